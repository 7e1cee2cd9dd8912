import { createLogger, OPENSHELL_VERSION, OpenShellError, SUPERVISOR_EXIT } from "@openshell/core";
import { pino } from "pino";
import { AWAIT_IDENTITY_ENV, awaitIdentity, replaceProcessEnvironment } from "./config/identity-wait.js";
import { parseSupervisorCommand, supervisorUsage } from "./config/supervisor-config.js";
import { installLightHeaders } from "./light-headers.js";
import { LogShipper } from "./logs/log-shipper.js";
import { OcsfJsonlWriter } from "./logs/ocsf-jsonl.js";
import { type PreparedBeforeIdentity, SandboxSupervisor } from "./sandbox-supervisor.js";
import { prepareInTemplate } from "./template/prepare-in-template.js";

async function main(): Promise<number> {
  installLightHeaders();
  // Started inside a VM template: prepare what every sandbox needs, then wait for the sandbox this
  // VM becomes.
  const identityFile = process.env[AWAIT_IDENTITY_ENV];
  const prepared: PreparedBeforeIdentity = identityFile ? await prepareInTemplate() : {};
  if (identityFile) replaceProcessEnvironment(await awaitIdentity(identityFile));
  let parsed: ReturnType<typeof parseSupervisorCommand>;
  try {
    parsed = parseSupervisorCommand(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return SUPERVISOR_EXIT.usage;
  }
  if (parsed.kind === "help") {
    process.stdout.write(supervisorUsage());
    return 0;
  }
  if (parsed.kind === "version") {
    process.stdout.write(`openshell-sandbox ${OPENSHELL_VERSION}\n`);
    return 0;
  }
  const config = parsed.config;
  const shipper = new LogShipper(config.sandboxId, { authorization: `Bearer ${config.supervisorToken}` });
  // OCSF events as JSONL while the `ocsf_json_enabled` setting is on (§3.11), read per event.
  let supervisor: SandboxSupervisor | undefined;
  const ocsfJsonl = new OcsfJsonlWriter({
    enabled: () => supervisor?.policyState.ocsfJsonEnabled ?? false,
    dir: config.ocsfLogDir,
  });
  const logger = createLogger({
    name: "openshell-sandbox",
    level: config.logLevel,
    destination: pino.multistream([
      { level: "trace", stream: pino.destination({ dest: 1, sync: true }) },
      { level: "info", stream: shipper },
      { level: "info", stream: ocsfJsonl },
    ]),
  });
  // The supervisor's secrets stay out of every child it starts.
  delete process.env.OPENSHELL_SUPERVISOR_TOKEN;
  delete process.env.NODE_COMPILE_CACHE; // the sandbox VM's init sets it for the supervisor alone
  supervisor = new SandboxSupervisor(config, logger, shipper, prepared);
  // A VM restored from a memory snapshot: its old TCP connection to the gateway is dead (the VM's
  // init sends this right after the restore, through tini). Registered early: SIGUSR2's default
  // action would end the process.
  process.on("SIGUSR2", () => {
    logger.info("asked to reconnect to the gateway (the VM was restored from a snapshot)");
    supervisor?.reconnectNow();
  });
  // Handlers first: a SIGTERM during start-up must still stop cleanly.
  const stopRequested = new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  let stopFirst = false;
  try {
    // A stop during start-up (e.g. while the start-up policy sync waits for the gateway) wins.
    stopFirst = await Promise.race([supervisor.start().then(() => false), stopRequested.then(() => true)]);
  } catch (error) {
    const failure = OpenShellError.from(error);
    logger.fatal({ code: failure.code }, failure.message);
    // Undo what started (the network namespace) and ship the reason before exiting: failed closed.
    await supervisor.stop().catch(() => undefined);
    return SUPERVISOR_EXIT.failedClosed;
  }
  if (!stopFirst) {
    // §3.3 step 16: the workload's end is the supervisor's, with its exit code; a stop ends it first.
    const exit = await Promise.race([supervisor.workloadExited(), stopRequested.then(() => undefined)]);
    if (exit) {
      logger.info({ exit_code: exit.exitCode }, "the workload exited; stopping");
      await supervisor.stop();
      return exit.exitCode;
    }
  }
  logger.info("stopping");
  await supervisor.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`openshell-sandbox: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
