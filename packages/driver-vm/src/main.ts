import { existsSync } from "node:fs";
import { join } from "node:path";
import { type FlagTable, type FlagValues, OpenShellError } from "@openshell/core";
import { runDriverMain } from "@openshell/driver-sdk";
import { chooseAccelerator } from "./accelerator.js";
import { guestEndpoint } from "./endpoint.js";
import { hostTscKhz } from "./host-tsc.js";
import type { GuestTlsFiles } from "./qemu-command.js";
import { VmDriver } from "./vm-driver.js";
import { defaultRuntimeRoot, locateVmRuntime, pinVmRuntime } from "./vm-runtime.js";

const QEMU = process.env.OPENSHELL_QEMU ?? "qemu-system-x86_64";
const QEMU_IMG = process.env.OPENSHELL_QEMU_IMG ?? "qemu-img";
/** TCG translation cache per VM (QEMU's own default is 1 GiB): see architecture/vm-driver.md. */
const DEFAULT_TCG_TB_MIB = 256;

/** The VM driver's flags beyond the common ones (driver-sdk's DRIVER_COMMON_FLAGS). */
const VM_DRIVER_FLAGS = {
  "openshell-endpoint": {
    type: "string",
    env: "OPENSHELL_GRPC_ENDPOINT",
    arg: "URL",
    description: "gateway URL the guests dial back, required",
  },
  vcpus: { type: "int", default: 2, min: 1, description: "vCPUs per VM" },
  "mem-mib": { type: "int", default: 1024, min: 1, description: "memory per VM in MiB" },
  "runtime-dir": {
    type: "string",
    arg: "DIR",
    description: "staged VM runtime (default: the one set-up staged)",
  },
  "tcg-tb-mib": {
    type: "int",
    env: "OPENSHELL_VM_TCG_TB_MIB",
    default: DEFAULT_TCG_TB_MIB,
    min: 1,
    description: "TCG translation cache per VM in MiB",
  },
  // Off only to measure what it saves (bench/vm-resources-bench.ts).
  "free-page-reporting": {
    type: "enum",
    env: "OPENSHELL_VM_FREE_PAGE_REPORTING",
    default: "on",
    values: ["on", "off"],
    description: "guests give freed memory back to the host",
  },
  templates: {
    type: "enum",
    env: "OPENSHELL_VM_TEMPLATES",
    default: "on",
    values: ["on", "off"],
    description: "new sandboxes start from a saved template VM (architecture/vm-snapshots.md)",
  },
  "boot-timeout-secs": {
    type: "int",
    env: "OPENSHELL_VM_BOOT_TIMEOUT_SECS",
    min: 1,
    description: "how long a VM may take to boot (default: per accelerator)",
  },
  "guest-tls-ca": { type: "string", arg: "FILE", description: "CA handed to guests (https endpoint)" },
  "guest-tls-cert": {
    type: "string",
    arg: "FILE",
    description: "client certificate handed to guests (https endpoint)",
  },
  "guest-tls-key": {
    type: "string",
    arg: "FILE",
    description: "client key handed to guests (https endpoint)",
  },
} as const satisfies FlagTable;

if (process.argv[2] === "doctor") {
  await doctor();
} else {
  await runDriverMain({
    binary: "openshell-driver-vm",
    extraFlags: VM_DRIVER_FLAGS,
    parseExtra: (values) => {
      const endpoint = values["openshell-endpoint"];
      if (!endpoint)
        throw new OpenShellError(
          "config_invalid",
          "OPENSHELL_GRPC_ENDPOINT is required (--openshell-endpoint)",
        );
      return {
        guestEndpoint: guestEndpoint(endpoint),
        vcpus: values.vcpus,
        memMib: values["mem-mib"],
        tcgTbMib: values["tcg-tb-mib"],
        freePageReporting: values["free-page-reporting"] === "on",
        templates: values.templates === "on",
        bootTimeoutS: values["boot-timeout-secs"],
        runtimeRoot: values["runtime-dir"] ?? defaultRuntimeRoot(),
        guestTls: parseGuestTls(values, endpoint),
      };
    },
    create: async (common, extra, logger) => {
      // Pinned into the driver's state: re-staging (another clone's set-up) cannot take it away.
      const runtime = pinVmRuntime(extra.runtimeRoot, common.stateDir);
      const accelerator = await chooseAccelerator({
        qemuBinary: QEMU,
        kernel: runtime.kernel,
        cacheFile: join(common.stateDir, "accelerator.json"),
      });
      logger.info({ accelerator: accelerator.accelerator, runtime: runtime.dir }, accelerator.reason);
      const driver = new VmDriver({
        stateDir: common.stateDir,
        guestEndpoint: extra.guestEndpoint,
        logLevel: common.logLevel,
        vcpus: extra.vcpus,
        memMib: extra.memMib,
        runtime,
        accelerator,
        qemuBinary: QEMU,
        qemuImg: QEMU_IMG,
        tscKhz: hostTscKhz(),
        tcgTbMib: extra.tcgTbMib,
        freePageReporting: extra.freePageReporting,
        templates: extra.templates,
        bootTimeoutS: extra.bootTimeoutS,
        guestTls: extra.guestTls,
        logger,
      });
      await driver.load();
      return { impl: driver.impl(), shutdown: (reason) => driver.shutdown(reason) };
    },
  });
}

/** Client TLS files handed to every guest (fw_cfg) when the gateway is https://; all three or none. */
function parseGuestTls(
  values: FlagValues<typeof VM_DRIVER_FLAGS>,
  endpoint: string,
): GuestTlsFiles | undefined {
  const ca = values["guest-tls-ca"];
  const cert = values["guest-tls-cert"];
  const key = values["guest-tls-key"];
  const given = [ca, cert, key].filter(Boolean).length;
  if (given === 0) {
    if (endpoint.startsWith("https:")) {
      throw new OpenShellError(
        "config_invalid",
        "an https:// --openshell-endpoint needs --guest-tls-ca, --guest-tls-cert and --guest-tls-key",
      );
    }
    return undefined;
  }
  if (!ca || !cert || !key)
    throw new OpenShellError(
      "config_invalid",
      "--guest-tls-ca, --guest-tls-cert and --guest-tls-key go together",
    );
  const files = { ca, cert, key };
  for (const [name, path] of Object.entries(files)) {
    if (!existsSync(path))
      throw new OpenShellError("config_invalid", `--guest-tls-${name} file '${path}' does not exist`);
  }
  return files;
}

/** `openshell-driver-vm doctor`: what this host offers VM sandboxes, in plain sentences. */
async function doctor(): Promise<void> {
  const lines: string[] = [];
  let ok = true;
  try {
    const runtime = locateVmRuntime();
    lines.push(`runtime: ${runtime.dir} (kernel ${String(runtime.manifest.kernel ?? "?")})`);
    const accelerator = await chooseAccelerator({ qemuBinary: QEMU, kernel: runtime.kernel });
    lines.push(`accelerator: ${accelerator.accelerator} — ${accelerator.reason}`);
  } catch (error) {
    ok = false;
    lines.push(`runtime: ${(error as Error).message}`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  process.exit(ok ? 0 : 1);
}
