import { existsSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { OpenShellError, sleep } from "@openshell/core";
import type { BootstrapInputs } from "./bootstrap-inputs.js";
import {
  chooseDriver,
  type DriverChoice,
  dockerDaemonAnswers,
  dockerLocation,
  type KvmProbe,
} from "./driver-choice.js";
import { findDriverDir, findGatewayBinary } from "./gateway-binaries.js";
import { connectGateway } from "./gateway-client.js";
import { ensureGatewayPki } from "./gateway-pki.js";
import type { GatewayMetadata } from "./gateway-registry.js";
import { type GatewayTarget, gatewayTargetOf } from "./gateway-target.js";
import {
  assertPortFree,
  gatewayLogTail,
  localGatewayLayout,
  runningGatewayPid,
  spawnLocalGateway,
  stopLocalGateway,
} from "./local-gateway.js";
import { ensureSupervisorBinStaged } from "./supervisor-bin-staging.js";
import { ensureVmRuntimeStaged } from "./vm-runtime-staging.js";

export interface StartOptions {
  name: string;
  port?: number | undefined;
  driver?: string | undefined;
  plaintext?: boolean | undefined;
  recreate?: boolean | undefined;
  vmVcpus?: number | undefined;
  vmMemMib?: number | undefined;
  /** For `driver: "auto"`: whether KVM boots a guest (the VM driver's probe). */
  kvmProbe?: KvmProbe | undefined;
}

export const DEFAULT_GATEWAY_NAME = "openshell";
const DEFAULT_PORT = 8080;
const START_TIMEOUT_MS = 90_000;

/**
 * Starts (or finds running) the local gateway `name`, records it upstream's way
 * (metadata.json + mtls/) and makes it active. State and secrets are reused unless `recreate`.
 */
export async function ensureLocalGateway(
  inputs: BootstrapInputs,
  options: StartOptions,
): Promise<{ target: GatewayTarget; alreadyRunning: boolean }> {
  const { progress: output, registry, env } = inputs;
  const layout = localGatewayLayout(registry.paths, options.name);
  const stored = registry.read(options.name);
  if (stored && stored.deployment !== "process")
    throw new OpenShellError(
      "already_exists",
      `gateway '${options.name}' is registered as ${stored.gateway_endpoint}, not a local gateway; pick another --name or remove it with: openshell gateway destroy --name ${options.name}`,
    );

  const running = runningGatewayPid(layout);
  if (running !== undefined && stored && !options.recreate) {
    registry.setActive(options.name);
    return { target: gatewayTargetOf(registry, stored), alreadyRunning: true };
  }
  if (options.recreate) {
    if (running !== undefined) {
      const progress = output.progress(`Stopping gateway '${options.name}'`);
      await stopLocalGateway(layout);
      progress.done();
    }
    output.warn(`Recreating gateway '${options.name}': its sandboxes, store and certificates are deleted`);
    rmSync(layout.stateDir, { recursive: true, force: true });
    registry.remove(options.name);
  } else if (running !== undefined) {
    // Running but unrecorded (metadata deleted by hand): stop and start it again so it is recorded.
    await stopLocalGateway(layout);
  }

  const port = options.port ?? (options.recreate ? undefined : stored?.gateway_port) ?? defaultPort(env);
  const plaintext = options.plaintext ?? (!options.recreate && stored?.auth_mode === "plaintext");
  const storedDriver = options.recreate ? undefined : stored?.driver;
  const requested = options.driver ?? storedDriver ?? "vm";
  let chosen: DriverChoice | undefined =
    requested === "auto" ? await chooseDriver(output, env, { kvm: options.kvmProbe }) : undefined;
  let driver = chosen?.driver ?? requested;
  await assertPortFree(port);

  const pki = plaintext ? undefined : await ensureGatewayPki(layout.pkiDir, { gatewayName: options.name });
  if (pki)
    output.note(
      pki.created ? "• Generated the gateway's CA and certificates" : "• Reusing existing TLS certificates",
    );
  const launch = findGatewayBinary(env);
  if (driver === "vm") {
    const vmByDefault = options.driver === undefined && storedDriver === undefined;
    const fallback = await stageVmRuntimeOrFallBackToDocker(output, env, vmByDefault);
    if (fallback) {
      output.note(`• ${fallback.reason}`);
      chosen = fallback;
      driver = fallback.driver;
    }
  }
  const driverEnv: Record<string, string> = {};
  if (driver === "docker") {
    if (!env.OPENSHELL_SANDBOX_IMAGE) Object.assign(driverEnv, await defaultDockerImage(output, env));
    driverEnv.OPENSHELL_SUPERVISOR_BIN_DIR = await ensureSupervisorBinStaged(
      output,
      env,
      join(layout.stateDir, "supervisor-bin"),
    );
  }
  const { pid, logOffset } = spawnLocalGateway(layout, launch, {
    env: driverEnv,
    port,
    driver,
    driverDir: findDriverDir(driver, env),
    plaintext,
    vmVcpus: options.vmVcpus,
    vmMemMib: options.vmMemMib,
  });
  const scheme = plaintext ? "http" : "https";
  const metadata: GatewayMetadata = {
    name: options.name,
    gateway_endpoint: `${scheme}://127.0.0.1:${port}`,
    is_remote: false,
    gateway_port: port,
    ...(plaintext ? { auth_mode: "plaintext" as const } : {}),
    deployment: "process",
    driver,
    ...(chosen
      ? { driver_reason: chosen.reason }
      : requested === stored?.driver && stored?.driver_reason
        ? { driver_reason: stored.driver_reason }
        : {}),
  };
  if (pki)
    registry.writeClientTls(options.name, {
      ca: pki.pki.caCert,
      cert: pki.pki.clientCert,
      key: pki.pki.clientKey,
    });
  registry.write(metadata);
  const target = gatewayTargetOf(registry, metadata);

  const progress = output.progress(
    `Starting gateway '${options.name}' on ${metadata.gateway_endpoint} (pid ${pid})`,
  );
  try {
    await waitUntilServing(target, () => runningGatewayPid(layout) !== undefined);
  } catch (error) {
    progress.done();
    throw new OpenShellError(
      "unavailable",
      `gateway '${options.name}' did not start: ${(error as Error).message}\nLast lines of ${layout.logFile}:\n${gatewayLogTail(layout, logOffset)}`,
    );
  }
  progress.done();
  registry.setActive(options.name);
  return { target, alreadyRunning: false };
}

/**
 * Stages the VM runtime. When that cannot be done here, the VM driver was only the default and a
 * Docker daemon answers: with OPENSHELL_SANDBOX_IMAGE set (the Docker driver's default image is
 * this runtime's root filesystem) the gateway starts with Docker instead; without it, the error
 * says how to.
 */
async function stageVmRuntimeOrFallBackToDocker(
  output: BootstrapInputs["progress"],
  env: NodeJS.ProcessEnv,
  vmByDefault: boolean,
): Promise<DriverChoice | undefined> {
  try {
    await ensureVmRuntimeStaged(output, env);
    return undefined;
  } catch (error) {
    const cause = OpenShellError.from(error);
    if (!vmByDefault || cause.code !== "failed_precondition") throw error;
    const dockerUp = await dockerDaemonAnswers(env).then(
      () => true,
      () => false,
    );
    if (!dockerUp) throw error;
    const docker = dockerLocation(env);
    if (env.OPENSHELL_SANDBOX_IMAGE)
      return {
        driver: "docker",
        reason: `the VM runtime cannot be staged here (${cause.message.split("\n")[0]}); Docker at ${docker} answers: sandboxes are containers of ${env.OPENSHELL_SANDBOX_IMAGE}`,
      };
    throw new OpenShellError(
      cause.code,
      `${cause.message}\nDocker answers at ${docker}: sandboxes can run as containers instead: OPENSHELL_SANDBOX_IMAGE=<a local image with a glibc userland and the 'sandbox' user> openshell gateway start (or --driver docker)`,
    );
  }
}

/**
 * The Docker driver's default sandbox image: the VM runtime's root filesystem (one recipe, two
 * targets), `openshell/sandbox:<runtime key>`, which the driver imports from the runtime's
 * `rootfs.tar` when the daemon lacks it. OPENSHELL_SANDBOX_IMAGE replaces it.
 */
async function defaultDockerImage(
  output: BootstrapInputs["progress"],
  env: NodeJS.ProcessEnv,
): Promise<Record<string, string>> {
  const otherImage =
    "or set OPENSHELL_SANDBOX_IMAGE to a local image with a glibc userland and the 'sandbox' user (uid 10001)";
  let runtime: string | undefined;
  try {
    runtime = await ensureVmRuntimeStaged(output, env);
  } catch (error) {
    const cause = OpenShellError.from(error);
    throw new OpenShellError(
      cause.code,
      `the Docker driver's default image is the VM runtime's root filesystem, which cannot be staged here; ${otherImage}.\n${cause.message}`,
    );
  }
  const archive = runtime && join(runtime, "rootfs.tar");
  if (!runtime || !archive || !existsSync(archive)) {
    throw new OpenShellError(
      "failed_precondition",
      `the Docker driver's default image is the VM runtime's root filesystem, and ${runtime ? `${runtime} has no rootfs.tar (staged by an older version: restage it)` : "the VM runtime could not be staged"}; ${otherImage}`,
    );
  }
  return {
    OPENSHELL_SANDBOX_IMAGE: `openshell/sandbox:${basename(runtime)}`,
    OPENSHELL_SANDBOX_IMAGE_ARCHIVE: archive,
  };
}

/** OPENSHELL_GATEWAY_PORT lets scripts (and auto-bootstrap) pick the port without a flag. */
export function defaultPort(env: NodeJS.ProcessEnv): number {
  const raw = env.OPENSHELL_GATEWAY_PORT;
  if (!raw) return DEFAULT_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new OpenShellError("invalid_argument", `OPENSHELL_GATEWAY_PORT='${raw}' is not a port number`);
  return port;
}

/** Polls Health until it answers; the gateway only listens once its compute driver is ready. */
export async function waitUntilServing(
  target: GatewayTarget,
  alive: () => boolean | Promise<boolean>,
  timeoutMs = START_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (!(await alive())) throw new Error(`the process exited${lastError ? ` (${lastError})` : ""}`);
    const connection = connectGateway(target);
    try {
      await connection.client.health({}, { timeoutMs: 2_000 });
      return;
    } catch (error) {
      lastError = (error as Error).message;
    } finally {
      connection.close();
    }
    await sleep(250);
  }
  throw new Error(`no answer within ${timeoutMs / 1000} s (last error: ${lastError})`);
}
