import { describe, expect, it } from "vitest";
import { formatBytes, parseByteQuantity, parseCpuQuantity } from "./quantity.js";

describe("quantities", () => {
  it("reads byte sizes with binary and decimal suffixes", () => {
    expect(parseByteQuantity("512Mi")).toBe(512 * 2 ** 20);
    expect(parseByteQuantity("2Gi")).toBe(2 * 2 ** 30);
    expect(parseByteQuantity("1.5Gi")).toBe(1.5 * 2 ** 30);
    expect(parseByteQuantity("1G")).toBe(1e9);
    expect(parseByteQuantity("4096")).toBe(4096);
    for (const bad of ["", "2GB", "2g", "-1Gi", "Gi", "1e3", "2 Gi x", "0x10"])
      expect(parseByteQuantity(bad)).toBeUndefined();
  });

  it("reads CPUs as whole, fractional or thousandths", () => {
    expect(parseCpuQuantity("2")).toBe(2);
    expect(parseCpuQuantity("1.5")).toBe(1.5);
    expect(parseCpuQuantity("500m")).toBe(0.5);
    for (const bad of ["", "2Gi", "two", "-1"]) expect(parseCpuQuantity(bad)).toBeUndefined();
  });

  it("formats sizes for messages", () => {
    expect(formatBytes(2 * 2 ** 30)).toBe("2 GiB");
    expect(formatBytes(512 * 2 ** 20)).toBe("512 MiB");
    expect(formatBytes(1.5 * 2 ** 30)).toBe("1.5 GiB");
  });
});
