import { describe, expect, it } from "vitest";
import { toNodeSignal, toProcessExit } from "./signals.js";

describe("signals", () => {
  it("maps SSH signal names to Node signals, refusing unknown ones", () => {
    expect(toNodeSignal("TERM")).toBe("SIGTERM");
    expect(toNodeSignal("SIGINT")).toBe("SIGINT");
    expect(toNodeSignal("usr1")).toBe("SIGUSR1");
    expect(toNodeSignal("STOP")).toBeUndefined();
    expect(toNodeSignal("BOGUS")).toBeUndefined();
  });

  it("reports exits as status or SSH signal name", () => {
    expect(toProcessExit(7, null)).toEqual({ code: 7 });
    expect(toProcessExit(0, 0)).toEqual({ code: 0 });
    expect(toProcessExit(null, "SIGTERM")).toEqual({ signal: "TERM" });
    expect(toProcessExit(0, 9)).toEqual({ signal: "KILL" });
    // SIGBUS has no SSH name: reported like a shell would.
    expect(toProcessExit(null, "SIGBUS")).toEqual({ code: 135 });
  });
});
