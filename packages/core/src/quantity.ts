/**
 * Kubernetes-style resource quantities, as sandbox templates carry them (`resources.limits.memory:
 * "2Gi"`, `cpu: "500m"`). Only the forms people write: a plain number, a binary (Ki, Mi, Gi, Ti, Pi)
 * or decimal (k, M, G, T, P) suffix, and `m` (thousandths) for CPUs. Anything else is undefined.
 */
const BYTE_SUFFIXES: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

const QUANTITY = /^(\d+(?:\.\d+)?|\.\d+)([A-Za-z]{0,2})$/;

/** Bytes of a quantity such as `512Mi`, `2Gi`, `1G` or `1073741824` (whole bytes, rounded up). */
export function parseByteQuantity(text: string): number | undefined {
  const match = QUANTITY.exec(text.trim());
  if (!match) return undefined;
  const factor = BYTE_SUFFIXES[match[2] ?? ""];
  if (factor === undefined) return undefined;
  const bytes = Math.ceil(Number(match[1]) * factor);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** CPUs of a quantity such as `2`, `1.5` or `500m`. */
export function parseCpuQuantity(text: string): number | undefined {
  const match = QUANTITY.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  if (match[2] === "") return value;
  if (match[2] === "m") return value / 1000;
  return undefined;
}

/** `2147483648` → `2 GiB`, `536870912` → `512 MiB` (for messages). */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ["TiB", 2 ** 40],
    ["GiB", 2 ** 30],
    ["MiB", 2 ** 20],
    ["KiB", 2 ** 10],
  ] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`;
  }
  return `${bytes} B`;
}
