import { createLogger, OPENSHELL_VERSION, OpenShellError } from "@openshell/core";
import { gatewayUsage, parseGatewayCommand } from "./config/gateway-config.js";
import { Gateway } from "./gateway.js";

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
