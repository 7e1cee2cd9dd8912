import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { isAlive, OpenShellError, sleep } from "@openshell/core";
import type { Launch } from "./gateway-binaries.js";
import { localGatewayStateDir, type OpenShellPaths } from "./paths.js";
import { liveCommandLine } from "./process-identity.js";

/** Every file of a local gateway lives under one directory (issue 6: one directory per gateway). */
export interface LocalGatewayLayout {
  name: string;
  stateDir: string;
  pidFile: string;
  logFile: string;
  dbFile: string;
  pkiDir: string;
  vmStateDir: string;
}

export function localGatewayLayout(paths: OpenShellPaths, name: string): LocalGatewayLayout {
  const stateDir = localGatewayStateDir(paths, name);
  return {
    name,
    stateDir,
    pidFile: join(stateDir, "gateway.pid"),
    logFile: join(stateDir, "logs", "gateway.log"),
    dbFile: join(stateDir, "gateway.db"),
    pkiDir: join(stateDir, "pki"),
    vmStateDir: join(stateDir, "vm"),
  };
}

export interface LocalGatewaySettings {
  port: number;
  driver: string;
  driverDir: string | undefined;
  plaintext: boolean;
  vmVcpus?: number | undefined;
  vmMemMib?: number | undefined;
  /** Settings the driver reads from the environment it inherits (Docker: the supervisor directory). */
  env?: Record<string, string>;
}

/** The pid of this gateway's process, if the pidfile names a live openshell-gateway on this state dir. */
export function runningGatewayPid(layout: LocalGatewayLayout): number | undefined {
  if (!existsSync(layout.pidFile)) return undefined;
  const pid = Number(readFileSync(layout.pidFile, "utf8").trim());
  const argv = liveCommandLine(pid);
  const ours = (text: string) => argv?.some((arg) => arg.includes(text));
  if (!ours("openshell-gateway") || !ours(layout.dbFile)) return undefined;
  return pid;
}

function gatewayArgs(layout: LocalGatewayLayout, settings: LocalGatewaySettings): string[] {
  const scheme = settings.plaintext ? "http" : "https";
  const pki = (file: string) => join(layout.pkiDir, file);
  return [
    "--port",
    String(settings.port),
    "--bind-address",
    "127.0.0.1",
    "--db-url",
    `sqlite:${layout.dbFile}`,
    "--drivers",
    settings.driver,
    ...(settings.driverDir ? ["--driver-dir", settings.driverDir] : []),
    "--driver-state-dir",
    layout.vmStateDir,
    "--grpc-endpoint",
    `${scheme}://127.0.0.1:${settings.port}`,
    "--ssh-gateway-host",
    "127.0.0.1",
    ...(settings.vmVcpus ? ["--vm-vcpus", String(settings.vmVcpus)] : []),
    ...(settings.vmMemMib ? ["--vm-mem-mib", String(settings.vmMemMib)] : []),
    ...(settings.plaintext
      ? ["--disable-tls"]
      : [
          "--tls-cert",
          pki("server.crt"),
          "--tls-key",
          pki("server.key"),
          "--tls-client-ca",
          pki("ca.crt"),
          "--vm-tls-ca",
          pki("ca.crt"),
          "--vm-tls-cert",
          pki("client.crt"),
          "--vm-tls-key",
          pki("client.key"),
        ]),
  ];
}

/** Fails with a clear message when something else already listens on the port. */
export async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new OpenShellError(
          "failed_precondition",
          error.code === "EADDRINUSE"
            ? `port ${port} on 127.0.0.1 is already in use by another program; choose another with: openshell gateway start --port <n>`
            : `cannot use port ${port}: ${error.message}`,
        ),
      ),
    );
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** Starts the gateway detached (it outlives the CLI) with its output appended to the log file. */
export function spawnLocalGateway(
  layout: LocalGatewayLayout,
  launch: Launch,
  settings: LocalGatewaySettings,
): { pid: number; logOffset: number } {
  mkdirSync(join(layout.stateDir, "logs"), { recursive: true, mode: 0o700 });
  const logOffset = existsSync(layout.logFile) ? statSync(layout.logFile).size : 0;
  const log = openSync(layout.logFile, "a");
  try {
    const child = spawn(launch.command, [...launch.args, ...gatewayArgs(layout, settings)], {
      detached: true,
      stdio: ["ignore", log, log],
      cwd: layout.stateDir,
      env: {
        ...process.env,
        OPENSHELL_LOG_LEVEL: process.env.OPENSHELL_LOG_LEVEL ?? "info",
        ...settings.env,
      },
    });
    child.unref();
    if (!child.pid) throw new OpenShellError("internal", `could not start ${launch.command}`);
    writeFileSync(layout.pidFile, `${child.pid}\n`);
    return { pid: child.pid, logOffset };
  } finally {
    closeSync(log);
  }
}

/** SIGTERM, then wait: a clean stop powers the sandboxes' VMs off, which takes a few seconds each. */
export async function stopLocalGateway(layout: LocalGatewayLayout, timeoutMs = 120_000): Promise<boolean> {
  const pid = runningGatewayPid(layout);
  if (pid === undefined) {
    rmSync(layout.pidFile, { force: true });
    return false;
  }
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline)
      throw new OpenShellError(
        "deadline_exceeded",
        `gateway '${layout.name}' (pid ${pid}) did not exit within ${Math.round(timeoutMs / 1000)} s of SIGTERM; see ${layout.logFile}`,
      );
    await sleep(100);
  }
  rmSync(layout.pidFile, { force: true });
  return true;
}

/** The last lines of the gateway log, pino JSON rendered as "level message". */
export function gatewayLogTail(layout: LocalGatewayLayout, fromOffset = 0, lines = 15): string {
  if (!existsSync(layout.logFile)) return "(no log yet)";
  const text = readFileSync(layout.logFile)
    .subarray(fromOffset)
    .toString("utf8")
    .trimEnd()
    .split("\n")
    .slice(-lines);
  return text
    .map((line) => {
      try {
        const record = JSON.parse(line) as {
          level?: number | string;
          msg?: string;
          err?: { message?: string };
        };
        const level = typeof record.level === "number" ? levelName(record.level) : (record.level ?? "");
        return `${level} ${record.msg ?? ""}${record.err?.message ? `: ${record.err.message}` : ""}`;
      } catch {
        return line;
      }
    })
    .join("\n");
}

function levelName(level: number): string {
  if (level >= 50) return "ERROR";
  if (level >= 40) return "WARN";
  if (level >= 30) return "INFO";
  return "DEBUG";
}
