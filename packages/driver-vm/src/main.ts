import { existsSync } from "node:fs";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
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

if (process.argv[2] === "doctor") {
  await doctor();
} else {
  await runDriverMain({
    binary: "openshell-driver-vm",
    extraFlags: {
      "openshell-endpoint": { type: "string" },
      vcpus: { type: "string", default: "2" },
      "mem-mib": { type: "string", default: "1024" },
      "runtime-dir": { type: "string" },
      "tcg-tb-mib": {
        type: "string",
        default: process.env.OPENSHELL_VM_TCG_TB_MIB ?? String(DEFAULT_TCG_TB_MIB),
      },
      // Off only to measure what it saves (bench/vm-resources-bench.ts).
      "free-page-reporting": {
        type: "string",
        default: process.env.OPENSHELL_VM_FREE_PAGE_REPORTING ?? "on",
      },
      "boot-timeout-secs": { type: "string", default: process.env.OPENSHELL_VM_BOOT_TIMEOUT_SECS },
      "guest-tls-ca": { type: "string" },
      "guest-tls-cert": { type: "string" },
      "guest-tls-key": { type: "string" },
    },
    parseExtra: (values) => {
      const endpoint =
        (values["openshell-endpoint"] as string | undefined) ?? process.env.OPENSHELL_GRPC_ENDPOINT;
      if (!endpoint)
        throw new OpenShellError(
          "config_invalid",
          "OPENSHELL_GRPC_ENDPOINT is required (--openshell-endpoint)",
        );
      const vcpus = positive(values.vcpus, "--vcpus");
      const memMib = positive(values["mem-mib"], "--mem-mib");
      const tcgTbMib = positive(values["tcg-tb-mib"], "--tcg-tb-mib");
      const freePageReporting = onOff(values["free-page-reporting"], "--free-page-reporting");
      const bootTimeout = values["boot-timeout-secs"];
      const bootTimeoutS =
        bootTimeout === undefined ? undefined : positive(bootTimeout, "--boot-timeout-secs");
      const guestTls = parseGuestTls(values, endpoint);
      return {
        guestEndpoint: guestEndpoint(endpoint),
        vcpus,
        memMib,
        tcgTbMib,
        freePageReporting,
        bootTimeoutS,
        runtimeRoot: (values["runtime-dir"] as string | undefined) ?? defaultRuntimeRoot(),
        guestTls,
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
function parseGuestTls(values: Record<string, unknown>, endpoint: string): GuestTlsFiles | undefined {
  const files = {
    ca: values["guest-tls-ca"] as string | undefined,
    cert: values["guest-tls-cert"] as string | undefined,
    key: values["guest-tls-key"] as string | undefined,
  };
  const given = Object.values(files).filter(Boolean).length;
  if (given === 0) {
    if (endpoint.startsWith("https:")) {
      throw new OpenShellError(
        "config_invalid",
        "an https:// --openshell-endpoint needs --guest-tls-ca, --guest-tls-cert and --guest-tls-key",
      );
    }
    return undefined;
  }
  if (given !== 3)
    throw new OpenShellError(
      "config_invalid",
      "--guest-tls-ca, --guest-tls-cert and --guest-tls-key go together",
    );
  for (const [name, path] of Object.entries(files)) {
    if (!existsSync(path as string))
      throw new OpenShellError("config_invalid", `--guest-tls-${name} file '${path}' does not exist`);
  }
  return files as GuestTlsFiles;
}

function onOff(value: unknown, flag: string): boolean {
  if (value === "on") return true;
  if (value === "off") return false;
  throw new OpenShellError("config_invalid", `${flag} must be 'on' or 'off', not '${String(value)}'`);
}

function positive(value: unknown, flag: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0)
    throw new OpenShellError("config_invalid", `${flag} must be a positive integer`);
  return number;
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
