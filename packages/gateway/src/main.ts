import { createLogger, OPENSHELL_VERSION, OpenShellError } from "@openshell/core";
import { gatewayUsage, parseGatewayCommand } from "./config/gateway-config.js";
import { Gateway } from "./gateway.js";

/** The Node the gateway and its native addons are built for (package.json `engines`). */
const MIN_NODE_MAJOR = 24;

async function main(): Promise<number> {
  let command: ReturnType<typeof parseGatewayCommand>;
  try {
    command = parseGatewayCommand(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`openshell-gateway: ${(error as Error).message}\n`);
    return 2;
  }
  if (command.kind === "help") {
    process.stdout.write(gatewayUsage());
    return 0;
  }
  if (command.kind === "version") {
    process.stdout.write(`openshell-gateway ${OPENSHELL_VERSION}\n`);
    return 0;
  }
  const nodeMajor = Number(process.versions.node.split(".")[0]);
  if (nodeMajor < MIN_NODE_MAJOR) {
    // Its SQLite addon is built for Node 24: on an older Node it dies of SIGSEGV at the first query.
    process.stderr.write(
      `openshell-gateway: needs Node.js ${MIN_NODE_MAJOR} or newer, this is ${process.version} (${process.execPath}). Run it with Node ${MIN_NODE_MAJOR}: \`bash scripts/setup.sh\` installs it for a checkout, or install openshell with npm under Node ${MIN_NODE_MAJOR}.\n`,
    );
    return 1;
  }
  const logger = createLogger({ name: "openshell-gateway", level: command.config.logLevel });
  const gateway = new Gateway(command.config, logger);
  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    if (stopping) return;
    logger.info({ signal }, "signal received");
    stopping = gateway.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  try {
    await gateway.start();
    return -1;
  } catch (error) {
    const failure = OpenShellError.from(error);
    logger.fatal({ code: failure.code }, failure.message);
    process.stderr.write(`openshell-gateway: ${failure.message}\n`);
    await gateway.stop().catch(() => undefined);
    return 1;
  }
}

const code = await main();
if (code >= 0) process.exit(code);
