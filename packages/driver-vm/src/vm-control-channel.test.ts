import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import { afterEach, describe, expect, it } from "vitest";
import { clockLine, identityLine, restoredLine, VmControlChannel } from "./vm-control-channel.js";

describe("VmControlChannel", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("makes private FIFOs; send fails at once without a reader and delivers one line with one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ctl-"));
    dirs.push(dir);
    const channel = new VmControlChannel(join(dir, "control"));
    await channel.ensure();
    const stat = statSync(join(dir, "control.in"));
    expect(stat.isFIFO()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(() => channel.send("sync 1")).toThrow(OpenShellError);
    // QEMU holds the FIFO open read-write; so does this reader.
    const reader = openSync(join(dir, "control.in"), constants.O_RDWR | constants.O_NONBLOCK);
    try {
      channel.send("sync 42");
      const buffer = Buffer.alloc(64);
      const n = readSync(reader, buffer, 0, 64, null);
      expect(buffer.subarray(0, n).toString()).toBe("sync 42\n");
      expect(() => channel.send("two\nlines")).toThrow(/line break/);
    } finally {
      closeSync(reader);
    }
    channel.remove();
  });

  it("restored and identity lines: time, fresh entropy each time, base64 files or '-'", () => {
    const [word, epoch, entropy] = restoredLine().split(" ");
    expect(word).toBe("restored");
    expect(Math.abs(Number(epoch) - Date.now() / 1000)).toBeLessThan(5);
    expect(Buffer.from(entropy as string, "base64")).toHaveLength(64);
    expect(restoredLine().split(" ")[2]).not.toBe(entropy);
    const line = identityLine(Buffer.from("A=1\nB=2\n"), undefined).split(" ");
    expect(line).toHaveLength(7);
    expect(line[0]).toBe("identity");
    expect(Buffer.from(line[3] as string, "base64").toString()).toBe("A=1\nB=2\n");
    expect(line.slice(4)).toEqual(["-", "-", "-"]);
    const tls = identityLine(Buffer.from("A=1"), {
      ca: Buffer.from("ca"),
      cert: Buffer.from("crt"),
      key: Buffer.from("key"),
    }).split(" ");
    expect(tls.slice(4).map((b) => Buffer.from(b, "base64").toString())).toEqual(["ca", "crt", "key"]);
  });

  it("a fork's reidentify line has the identity line's fields; the clock line only the time", () => {
    const line = identityLine(Buffer.from("A=1"), undefined, "reidentify").split(" ");
    expect(line).toHaveLength(7);
    expect(line[0]).toBe("reidentify");
    expect(Buffer.from(line[2] as string, "base64")).toHaveLength(64);
    expect(Buffer.from(line[3] as string, "base64").toString()).toBe("A=1");
    const [word, epoch, ...rest] = clockLine().split(" ");
    expect(word).toBe("clock");
    expect(Math.abs(Number(epoch) - Date.now() / 1000)).toBeLessThan(5);
    expect(rest).toEqual([]);
  });
});
