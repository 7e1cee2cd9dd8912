import { parseArgs } from "node:util";
import { OpenShellError } from "./errors.js";

/**
 * One table per binary declares every flag once (name, env var, default, type, description); parsing
 * (flag, else env, else default) and `--help` both come from it. Built on node:util parseArgs so the
 * binaries' cold start pays for no argument library.
 */
export type FlagType = "string" | "boolean" | "int" | "enum" | "list";

export interface FlagSpec {
  type: FlagType;
  description: string;
  /** Environment variable that sets it when the flag is absent (empty counts as unset). */
  env?: string;
  /** Settable only through `env` (tuning knobs); listed under "Environment" in help. */
  envOnly?: boolean;
  default?: string | number | boolean | readonly string[];
  short?: string;
  /** Placeholder in help, e.g. URL, FILE. */
  arg?: string;
  /** Allowed values of an enum. */
  values?: readonly string[];
  /** Bounds of an int (inclusive); `unit` names what it is in the error ("port" → "is not a valid port"). */
  min?: number;
  max?: number;
  unit?: string;
  /** Heading the flag is listed under in help. */
  group?: string;
}

export type FlagTable = Record<string, FlagSpec>;

type ValueOf<S extends FlagSpec> = S["type"] extends "boolean"
  ? boolean
  : S["type"] extends "int"
    ? number
    : S["type"] extends "list"
      ? string[]
      : S extends { values: readonly (infer V)[] }
        ? V
        : string;

/** Booleans are false when unset; a flag with a default always has a value; the rest may be undefined. */
export type FlagValues<T extends FlagTable> = {
  [K in keyof T]: T[K] extends { type: "boolean" } | { default: unknown }
    ? ValueOf<T[K]>
    : ValueOf<T[K]> | undefined;
};

export type FlagSource = "flag" | "env" | "default";

export interface ParsedFlags<T extends FlagTable> {
  values: FlagValues<T>;
  /** Where each value came from (absent: unset). */
  sources: Partial<Record<keyof T, FlagSource>>;
  positionals: string[];
}

const TRUE = /^(1|true|yes|y|on)$/i;
const FALSE = /^(0|false|no|n|off)$/i;

const fail = (message: string): never => {
  throw new OpenShellError("config_invalid", message);
};

/** A bad value, named as it was given, then every way to set it: "--port '0' ... (--port or OPENSHELL_SERVER_PORT)". */
function badValue(name: string, spec: FlagSpec, raw: string, fromEnv: boolean, problem: string): never {
  const given = fromEnv || spec.envOnly ? `${spec.env}='${raw}'` : `--${name} '${raw}'`;
  const ways = spec.envOnly ? "" : spec.env ? ` (--${name} or ${spec.env})` : "";
  return fail(`${given} ${problem}${ways}`);
}

/** Parses argv + env; throws OpenShellError(config_invalid) naming the flag and env var to fix. */
export function parseFlags<T extends FlagTable>(
  table: T,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { binary: string; allowPositionals?: boolean },
): ParsedFlags<T> {
  const argOptions: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, spec] of Object.entries(table)) {
    if (spec.envOnly) continue;
    const type = spec.type === "boolean" ? "boolean" : "string";
    argOptions[name] = spec.short ? { type, short: spec.short } : { type };
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: argOptions,
      strict: true,
      allowPositionals: options.allowPositionals ?? false,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return fail(`${message.split("\n")[0]}. Run '${options.binary} --help' for the list of flags.`);
  }
  const values: Record<string, unknown> = {};
  const sources: Record<string, FlagSource> = {};
  for (const [name, spec] of Object.entries(table)) {
    const fromFlag = spec.envOnly ? undefined : parsed.values[name];
    const fromEnv = spec.env ? env[spec.env] : undefined;
    let raw: string | boolean | undefined;
    if (fromFlag !== undefined) {
      raw = fromFlag;
      sources[name] = "flag";
    } else if (fromEnv !== undefined && fromEnv !== "") {
      raw = fromEnv;
      sources[name] = "env";
    }
    if (raw === undefined) {
      if (spec.default !== undefined) sources[name] = "default";
      values[name] = spec.type === "boolean" ? (spec.default ?? false) : spec.default;
      continue;
    }
    values[name] = convert(name, spec, raw, sources[name] === "env");
  }
  return {
    values: values as FlagValues<T>,
    sources: sources as ParsedFlags<T>["sources"],
    positionals: parsed.positionals,
  };
}

function convert(name: string, spec: FlagSpec, raw: string | boolean, fromEnv: boolean): unknown {
  if (typeof raw === "boolean") return raw;
  switch (spec.type) {
    case "boolean":
      if (TRUE.test(raw)) return true;
      if (FALSE.test(raw)) return false;
      return badValue(name, spec, raw, fromEnv, "is not a boolean; use true or false");
    case "int": {
      const min = spec.min ?? Number.MIN_SAFE_INTEGER;
      const max = spec.max ?? Number.MAX_SAFE_INTEGER;
      const value = Number(raw);
      if (/^-?\d+$/.test(raw) && value >= min && value <= max) return value;
      const range =
        spec.max !== undefined ? ` (${min}-${max})` : spec.min !== undefined ? ` (at least ${min})` : "";
      return badValue(name, spec, raw, fromEnv, `is not a valid ${spec.unit ?? "integer"}${range}`);
    }
    case "enum":
      if (spec.values?.includes(raw)) return raw;
      return badValue(name, spec, raw, fromEnv, `is not one of ${(spec.values ?? []).join(", ")}`);
    case "list":
      return raw
        .split(",")
        .map((item) => item.trim())
        .filter(Boolean);
    default:
      return raw;
  }
}

/** `--help` text from the same table: usage line, description, flags by group, env-only settings. */
export function flagHelp(
  table: FlagTable,
  text: { usage: string; description?: string; footer?: string },
): string {
  const rows = new Map<string, [string, string][]>();
  const envRows: [string, string][] = [];
  for (const [name, spec] of Object.entries(table)) {
    const notes = [spec.description];
    if (spec.type === "enum" && spec.values) notes.push(`(${spec.values.join("|")})`);
    if (spec.default !== undefined && spec.type !== "boolean") {
      notes.push(`(default ${Array.isArray(spec.default) ? spec.default.join(",") : String(spec.default)})`);
    }
    if (spec.envOnly) {
      envRows.push([spec.env ?? name, notes.join(" ")]);
      continue;
    }
    if (spec.env) notes.push(`[${spec.env}]`);
    const arg = spec.type === "boolean" ? "" : ` ${spec.arg ?? (spec.type === "int" ? "N" : "VALUE")}`;
    const flag = `${spec.short ? `-${spec.short}, ` : ""}--${name}${arg}`;
    const group = spec.group ?? "Options";
    rows.set(group, [...(rows.get(group) ?? []), [flag, notes.join(" ")]]);
  }
  const width = Math.max(...[...rows.values(), envRows].flat().map(([left]) => left.length)) + 2;
  const section = (title: string, lines: [string, string][]) =>
    `${title}:\n${lines.map(([left, right]) => `  ${left.padEnd(width)}${right}`).join("\n")}\n`;
  const parts = [`Usage: ${text.usage}\n`];
  if (text.description) parts.push(`${text.description}\n`);
  for (const [group, lines] of rows) parts.push(section(group, lines));
  if (envRows.length > 0) parts.push(section("Environment", envRows));
  if (text.footer) parts.push(`${text.footer}\n`);
  return parts.join("\n");
}
