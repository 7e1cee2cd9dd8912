/** Summary statistics the benchmarks print. */

/** The value at quantile `q` (0–1) of `xs`, nearest rank; NaN for no values. */
export function quantile(xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export const median = (xs: number[]) => quantile(xs, 0.5);

/** Millisecond samples as "p50 1.23 s [min–max] (n=N)". */
export const secondsSummary = (xs: number[]) =>
  `p50 ${(median(xs) / 1000).toFixed(2)} s [${(Math.min(...xs) / 1000).toFixed(2)}–${(Math.max(...xs) / 1000).toFixed(2)}] (n=${xs.length})`;
