import { describe, expect, it } from "vitest";
import { isLoopbackAddress, isLoopbackHost, isValidPort } from "./loopback-destination.js";

describe("loopback destinations", () => {
  it("accepts 127.0.0.0/8, ::1 in its spellings, and localhost", () => {
    for (const host of [
      "127.0.0.1",
      "127.255.1.2",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
      "::ffff:127.0.0.1",
      "localhost",
      "LOCALHOST",
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
  });

  it("refuses everything else", () => {
    for (const host of [
      "10.255.255.1",
      "128.0.0.1",
      "0.0.0.0",
      "::",
      "::ffff:10.0.0.1",
      "example.com",
      "localhost.evil.com",
      "127.0.0.1.nip.io",
      "",
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
    expect(isLoopbackAddress(undefined)).toBe(false);
  });

  it("accepts ports 1-65535 only", () => {
    expect([0, 1, 65535, 65536, 70000, 1.5, -1].map(isValidPort)).toEqual([
      false,
      true,
      true,
      false,
      false,
      false,
      false,
    ]);
  });
});
