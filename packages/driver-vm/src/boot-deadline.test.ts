import { describe, expect, it } from "vitest";
import { bootDeadlineMs, bootSilenceMs } from "./boot-deadline.js";

const idle = { baseSeconds: undefined, loadAverage: 0.2, cpus: 2, concurrentBoots: 1 };

describe("bootDeadlineMs", () => {
  it("gives KVM 60 s and TCG 180 s on an idle host", () => {
    expect(bootDeadlineMs({ ...idle, accelerator: "kvm" })).toBe(60_000);
    expect(bootDeadlineMs({ ...idle, accelerator: "tcg" })).toBe(180_000);
  });

  it("stretches with the load average and with concurrent boots beyond the CPU count", () => {
    expect(bootDeadlineMs({ ...idle, accelerator: "tcg", loadAverage: 6 })).toBe(540_000);
    expect(bootDeadlineMs({ ...idle, accelerator: "tcg", concurrentBoots: 5 })).toBe(450_000);
    expect(bootDeadlineMs({ ...idle, accelerator: "kvm", concurrentBoots: 2 })).toBe(60_000);
  });

  it("takes the flag's seconds as the base", () => {
    expect(bootDeadlineMs({ ...idle, accelerator: "tcg", baseSeconds: 5 })).toBe(5_000);
    expect(bootDeadlineMs({ ...idle, accelerator: "tcg", baseSeconds: 5, loadAverage: 4 })).toBe(10_000);
  });

  it("lets the console stay silent for a third of the deadline, never less than 10 s", () => {
    expect(bootSilenceMs(180_000)).toBe(60_000);
    expect(bootSilenceMs(60_000)).toBe(20_000);
    expect(bootSilenceMs(3_000)).toBe(10_000);
  });
});
