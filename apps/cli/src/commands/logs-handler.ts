import { toJson } from "@bufbuild/protobuf";
import { OpenShellError } from "@openshell/core";
import { type SandboxLogLine, SandboxLogLineSchema } from "@openshell/proto";
import { CliContext } from "../cli-context.js";
import type { CommandInput } from "../command-spec/program-spec.js";
import { getSandbox } from "../sandbox/sandbox-lookup.js";
import type { Output } from "../ui/output.js";
import { terminalSafe } from "../ui/terminal-safe.js";
import type { logsCommand } from "./logs.js";

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const LEVELS = ["error", "warn", "info", "debug", "trace"];

function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim());
  if (!match)
    throw new OpenShellError(
      "invalid_argument",
      `bad --since '${text}': use a number and a unit, e.g. 30s, 5m, 1h, 2d`,
    );
  return Number(match[1]) * (UNITS[match[2] ?? "s"] ?? 1_000);
}

function sourcesOf(values: string[]): string[] {
  const sources = values.flatMap((value) => value.split(","));
  for (const source of sources)
    if (!["gateway", "sandbox", "all"].includes(source))
      throw new OpenShellError("invalid_argument", `bad --source '${source}': use gateway, sandbox or all`);
  return sources.includes("all") ? [] : sources;
}

/**
 * One log line per terminal line. Level, source and message come from the sandbox: control
 * characters (line breaks too, so no line can pose as another) are printed escaped. JSON is exact.
 */
function printLine(output: Output, json: boolean, line: SandboxLogLine): void {
  if (json) {
    output.stdout.write(`${JSON.stringify(toJson(SandboxLogLineSchema, line))}\n`);
    return;
  }
  const time = new Date(Number(line.timestampMs)).toISOString();
  const level = terminalSafe((line.level || "info").toUpperCase()).padEnd(5);
  const painted = level.startsWith("ERR")
    ? output.paint("31", level)
    : level.startsWith("WARN")
      ? output.paint("33", level)
      : level;
  output.print(
    `${output.dim(time)} ${painted} ${output.dim(`[${terminalSafe(line.source || "sandbox")}]`)} ${terminalSafe(line.message)}`,
  );
}

export async function run(input: CommandInput<typeof logsCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const options = input.options;
  const level = options.level?.toLowerCase();
  if (level && !LEVELS.includes(level))
    throw new OpenShellError(
      "invalid_argument",
      `bad --level '${options.level}': use one of ${LEVELS.join(", ")}`,
    );
  const sources = sourcesOf(options.source);
  const sinceMs = options.since ? BigInt(Date.now() - parseDuration(options.since)) : 0n;
  const lines = options.lines;
  const target = ctx.target();
  const name = ctx.sandboxName(input.args.name, target);

  return ctx.withGateway(async (client) => {
    const sandbox = await getSandbox(client, name);
    if (!options.tail) {
      const response = await client.getSandboxLogs({
        sandboxId: sandbox.id,
        lines,
        sinceMs,
        sources,
        minLevel: level ?? "",
      });
      for (const line of response.logs) printLine(ctx.output, ctx.json, line);
      if (response.logs.length === 0 && !ctx.json) ctx.output.note(`No log lines for sandbox '${name}' yet.`);
      return 0;
    }
    const abort = new AbortController();
    const stop = () => abort.abort();
    process.once("SIGINT", stop);
    try {
      const stream = client.watchSandbox(
        {
          id: sandbox.id,
          followLogs: true,
          logTailLines: lines,
          logSinceMs: sinceMs,
          logSources: sources,
          logMinLevel: level ?? "",
        },
        { signal: abort.signal },
      );
      for await (const event of stream)
        if (event.payload.case === "log") printLine(ctx.output, ctx.json, event.payload.value);
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    } finally {
      process.off("SIGINT", stop);
    }
    return 0;
  }, target);
}
