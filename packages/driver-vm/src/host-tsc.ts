import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/**
 * The host's TSC frequency in kHz, for the guest's `tsc_early_khz=`. Under TCG a microvm guest
 * (no HPET, no ACPI PM timer) cannot calibrate its TSC when the host is busy and hangs at boot
 * ("could not calculate TSC khz"); passing the host's value skips the calibration. Best source
 * first: the host kernel's own calibration in its log, then /proc/cpuinfo when the TSC is constant.
 */
export function hostTscKhz(): number | undefined {
  let log = "";
  try {
    log = execFileSync("dmesg", { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    // dmesg may be restricted
  }
  const patterns = [
    /Refined TSC clocksource calibration: ([0-9.]+) MHz/g,
    /tsc: Detected ([0-9.]+) MHz TSC/g,
    /tsc: Detected ([0-9.]+) MHz processor/g,
  ];
  for (const pattern of patterns) {
    const matches = [...log.matchAll(pattern)];
    const mhz = matches.at(-1)?.[1];
    if (mhz) return Math.round(Number(mhz) * 1000);
  }
  try {
    const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
    if (!/\bconstant_tsc\b/.test(cpuinfo)) return undefined;
    const mhz = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(cpuinfo)?.[1];
    return mhz ? Math.round(Number(mhz) * 1000) : undefined;
  } catch {
    return undefined;
  }
}
