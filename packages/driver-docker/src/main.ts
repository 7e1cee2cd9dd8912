import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import { runDriverMain } from "@openshell/driver-sdk";
import { connectDocker } from "./docker-connection.js";
import { DockerDriver } from "./docker-driver.js";
import { DOCKER_DRIVER_FLAGS, type DockerFlags } from "./docker-flags.js";
import { containerEndpoint } from "./endpoint-forwarder.js";
import { ensureSandboxNetwork } from "./sandbox-network.js";
import { driverInstanceId, prepareSupervisorDir } from "./supervisor-dir.js";
import { prepareTlsDir } from "./tls-dir.js";

function parseOptions(values: DockerFlags) {
  const endpoint = values["openshell-endpoint"];
  if (!endpoint) {
    throw new OpenShellError(
      "config_invalid",
      "--openshell-endpoint (OPENSHELL_GRPC_ENDPOINT) is required: the gateway's URL, e.g. http://127.0.0.1:8080",
    );
  }
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
    throw new OpenShellError(
      "config_invalid",
      `--openshell-endpoint '${endpoint}' is not an http:// or https:// URL`,
    );
  }
  const tlsFiles = [values["guest-tls-ca"], values["guest-tls-cert"], values["guest-tls-key"]];
  if (endpoint.startsWith("https:") && tlsFiles.some((f) => !f)) {
    throw new OpenShellError(
      "config_invalid",
      "an https:// --openshell-endpoint needs --guest-tls-ca, --guest-tls-cert and --guest-tls-key (what the supervisors trust and present)",
    );
  }
  const defaultImage = values["sandbox-image"];
  if (!defaultImage)
    throw new OpenShellError("config_invalid", "--sandbox-image (OPENSHELL_SANDBOX_IMAGE) is required");
  const supervisorBin = values["supervisor-bin"];
  if (!supervisorBin) {
    throw new OpenShellError(
      "config_invalid",
      "--supervisor-bin (OPENSHELL_SUPERVISOR_BIN_DIR) is required: a directory staged by packages/sandbox-supervisor/staging/stage-supervisor-bin.sh",
    );
  }
  const [ca, cert, key] = tlsFiles;
  return {
    endpoint,
    defaultImage,
    supervisorBin,
    tls: endpoint.startsWith("https:") && ca && cert && key ? { ca, cert, key } : undefined,
  };
}

if (process.argv[2] === "doctor") {
  const { doctor } = await import("./doctor.js");
  process.exit(await doctor(process.argv.slice(3)));
} else {
  await runDriverMain({
    binary: "openshell-driver-docker",
    extraFlags: DOCKER_DRIVER_FLAGS,
    parseExtra: (values) => ({ ...parseOptions(values), values }),
    create: async (common, extra, logger) => {
      const { docker, describe } = await connectDocker(extra.values["docker-host"]);
      const network = extra.values.network;
      const hostAddress = await ensureSandboxNetwork(docker, network);
      mkdirSync(common.stateDir, { recursive: true, mode: 0o700 });
      const supervisorDir = prepareSupervisorDir(extra.supervisorBin, common.stateDir);
      const instance = driverInstanceId(common.stateDir);
      const tlsDir = extra.tls ? prepareTlsDir(extra.tls, join(common.stateDir, "tls")) : undefined;
      const forwarded = await containerEndpoint(extra.endpoint, hostAddress, logger);
      logger.info(
        {
          docker: describe,
          network,
          host_address: hostAddress,
          endpoint: forwarded.url,
          supervisor_dir: supervisorDir,
        },
        "using Docker",
      );
      const driver = new DockerDriver({
        docker,
        stateDir: common.stateDir,
        spec: {
          defaultImage: extra.defaultImage,
          endpoint: forwarded.url,
          network,
          hostAddress,
          supervisorDir,
          tlsDir,
          runtime: extra.values.runtime,
          instance,
        },
        defaultImageArchive: extra.values["sandbox-image-archive"],
        logger,
      });
      await driver.load();
      // Containers do not depend on the driver: whatever ends it, they keep running for the next to adopt.
      return {
        impl: driver.impl(),
        shutdown: async () => {
          await driver.shutdown();
          await forwarded.close();
        },
      };
    },
  });
}
