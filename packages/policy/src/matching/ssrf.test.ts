import { describe, expect, it } from "vitest";
import { checkAddresses, isAlwaysBlockedAddress, isInternalAddress, parseAllowedIps } from "./ssrf.js";

const allow = (...entries: string[]) => {
  const parsed = parseAllowedIps(entries);
  expect(parsed.errors).toEqual([]);
  return parsed.list;
};

describe("internal and always-blocked addresses", () => {
  it.each([
    "127.0.0.1",
    "127.1.2.3",
    "169.254.169.254",
    "169.254.0.1",
    "0.0.0.0",
    "0.1.2.3",
    "::1",
    "::",
    "fe80::1",
    "febf::1",
    "fe80::1%eth0",
    "[::1]",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
  ])("%s is always blocked (and internal)", (address) => {
    expect(isAlwaysBlockedAddress(address)).toBe(true);
    expect(isInternalAddress(address)).toBe(true);
  });

  it.each([
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.255",
    "192.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "255.255.255.255",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "::ffff:a00:1",
    "::ffff:100.64.0.1",
    "::ffff:192.168.0.1",
  ])("%s is internal but not always blocked", (address) => {
    expect(isInternalAddress(address)).toBe(true);
    expect(isAlwaysBlockedAddress(address)).toBe(false);
  });

  it.each([
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",
    "172.15.255.255",
    "100.63.255.255",
    "100.128.0.1",
    "192.169.0.1",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "fec0::1",
  ])("%s is public", (address) => {
    expect(isInternalAddress(address)).toBe(false);
    expect(isAlwaysBlockedAddress(address)).toBe(false);
  });

  it("a non-IP is neither (callers refuse it separately)", () => {
    expect(isInternalAddress("example.com")).toBe(false);
    expect(isAlwaysBlockedAddress("example.com")).toBe(false);
  });
});

describe("parseAllowedIps", () => {
  it("takes CIDRs and bare IPs of both families", () => {
    const list = allow("10.0.5.0/24", "10.0.6.20", "fd00::/8", "::ffff:192.168.0.0/112");
    expect(list.contains("10.0.5.99")).toBe(true);
    expect(list.contains("10.0.6.20")).toBe(true);
    expect(list.contains("10.0.6.21")).toBe(false);
    expect(list.contains("fd00::5")).toBe(true);
    expect(list.contains("192.168.3.4")).toBe(true);
    expect(list.contains("::ffff:10.0.5.1")).toBe(true);
    expect(list.contains("not-an-ip")).toBe(false);
  });

  it("refuses unparsable entries and anything overlapping loopback, link-local or unspecified", () => {
    const { errors } = parseAllowedIps([
      "10.0.0.0/33",
      "bogus",
      "10.0.0.0/x",
      "127.0.0.1",
      "127.0.0.0/8",
      "169.254.169.254/32",
      "169.0.0.0/8",
      "0.0.0.0/0",
      "0.0.0.0",
      "::1",
      "::/0",
      "fe80::/10",
      "fe80::1",
      "::ffff:127.0.0.1",
      "::ffff:169.254.0.0/120",
    ]);
    expect(errors).toHaveLength(15);
    expect(errors[0]).toBe("invalid CIDR/IP in allowed_ips: 10.0.0.0/33");
    expect(errors[3]).toBe(
      "allowed_ips entry 127.0.0.1 falls within always-blocked range (loopback/link-local/unspecified); remove this entry — SSRF hardening prevents traffic to these destinations regardless of policy",
    );
  });

  it("warns about CIDRs broader than /16", () => {
    expect(parseAllowedIps(["10.0.0.0/8"]).warnings).toEqual([
      "allowed_ips entry has a very broad CIDR 10.0.0.0/8 (/8) < /16; this may expose control-plane services on the same network",
    ]);
    expect(parseAllowedIps(["10.1.0.0/16"]).warnings).toEqual([]);
  });
});

describe("checkAddresses", () => {
  it("without allowed_ips refuses any internal address and passes public ones", () => {
    expect(checkAddresses(undefined, "api.example.com", 443, ["93.184.216.34"])).toEqual({ allowed: true });
    expect(checkAddresses(undefined, "evil.example.com", 443, ["93.184.216.34", "10.0.0.5"])).toEqual({
      allowed: false,
      kind: "internal_address",
      reason: "evil.example.com resolves to internal address 10.0.0.5, connection rejected",
    });
    expect(checkAddresses(undefined, "meta", 80, ["::ffff:169.254.169.254"])).toMatchObject({
      allowed: false,
    });
    expect(checkAddresses(undefined, "x", 80, ["fd00::1"])).toMatchObject({ allowed: false });
  });

  it("control-plane ports are open without allowed_ips to public addresses (upstream checks them with an allowlist)", () => {
    expect(checkAddresses(undefined, "k8s.example.com", 6443, ["93.184.216.34"])).toEqual({ allowed: true });
  });

  it("with allowed_ips every address must be in the list, never always-blocked, never on a control-plane port", () => {
    const list = allow("10.0.5.0/24");
    expect(checkAddresses(list, "db.internal.corp", 5432, ["10.0.5.20"])).toEqual({ allowed: true });
    expect(checkAddresses(list, "db.internal.corp", 5432, ["10.0.5.20", "10.0.6.1"])).toEqual({
      allowed: false,
      kind: "allowed_ips",
      reason: "db.internal.corp resolves to 10.0.6.1 which is not in allowed_ips, connection rejected",
    });
    expect(checkAddresses(list, "db.internal.corp", 5432, ["93.184.216.34"])).toMatchObject({
      allowed: false,
    });
    expect(checkAddresses(list, "db.internal.corp", 5432, ["127.0.0.1"])).toEqual({
      allowed: false,
      kind: "allowed_ips",
      reason: "db.internal.corp resolves to always-blocked address 127.0.0.1, connection rejected",
    });
    for (const port of [2379, 2380, 6443, 10250, 10255]) {
      expect(checkAddresses(list, "db.internal.corp", port, ["10.0.5.20"])).toEqual({
        allowed: false,
        kind: "allowed_ips",
        reason: `port ${port} is a blocked control-plane port, connection rejected`,
      });
    }
  });

  it("a literal-IP host is its own allowlist, except an always-blocked one", () => {
    expect(checkAddresses(undefined, "10.0.0.7", 8080, ["10.0.0.7"])).toEqual({ allowed: true });
    expect(checkAddresses(undefined, "[fd00::7]", 8080, ["fd00::7"])).toEqual({ allowed: true });
    expect(checkAddresses(undefined, "10.0.0.7", 6443, ["10.0.0.7"])).toMatchObject({ kind: "allowed_ips" });
    expect(checkAddresses(undefined, "169.254.169.254", 80, ["169.254.169.254"])).toEqual({
      allowed: false,
      kind: "internal_address",
      reason: "169.254.169.254 resolves to internal address 169.254.169.254, connection rejected",
    });
    expect(checkAddresses(undefined, "127.0.0.1", 80, ["127.0.0.1"])).toMatchObject({ allowed: false });
  });

  it("no addresses, or something that is not an address, is a denial", () => {
    expect(checkAddresses(undefined, "nx.example.com", 443, [])).toEqual({
      allowed: false,
      kind: "internal_address",
      reason: "DNS resolution returned no addresses for nx.example.com:443",
    });
    expect(checkAddresses(allow("10.0.0.0/24"), "x", 443, [])).toMatchObject({ kind: "allowed_ips" });
    expect(checkAddresses(undefined, "x", 443, ["garbage"])).toMatchObject({ allowed: false });
  });
});
