import { BlockList, isIP } from "node:net";

/** Ports upstream refuses on every `allowed_ips` connection (etcd, the Kubernetes API, the kubelet). */
export const BLOCKED_CONTROL_PLANE_PORTS: readonly number[] = Object.freeze([2379, 2380, 6443, 10250, 10255]);

type Family = "ipv4" | "ipv6";
type Range = readonly [address: string, prefix: number, family: Family];

/**
 * Never reachable, whatever `allowed_ips` says (upstream `is_always_blocked_ip`): loopback,
 * link-local, unspecified. `0.0.0.0/8` as a whole (upstream: `0.0.0.0` only), since Linux connects
 * `0.0.0.0` to the local host. BlockList also matches the IPv4-mapped IPv6 forms of the v4 ranges.
 */
const ALWAYS_BLOCKED: readonly Range[] = [
  ["127.0.0.0", 8, "ipv4"],
  ["169.254.0.0", 16, "ipv4"],
  ["0.0.0.0", 8, "ipv4"],
  ["::1", 128, "ipv6"],
  ["::", 128, "ipv6"],
  ["fe80::", 10, "ipv6"],
];

/**
 * Internal unless `allowed_ips` names them (upstream `is_internal_ip`): the always-blocked ranges,
 * RFC 1918, CGNAT, IETF protocol assignments, benchmarking, TEST-NETs, IPv6 ULA; and, beyond
 * upstream's list, TEST-NET-1, multicast, the reserved 240/4 (with broadcast), IPv6 multicast and
 * the IPv6 documentation prefix, none of which a public name should resolve to.
 */
const INTERNAL: readonly Range[] = [
  ...ALWAYS_BLOCKED,
  ["10.0.0.0", 8, "ipv4"],
  ["172.16.0.0", 12, "ipv4"],
  ["192.168.0.0", 16, "ipv4"],
  ["100.64.0.0", 10, "ipv4"],
  ["192.0.0.0", 24, "ipv4"],
  ["192.0.2.0", 24, "ipv4"],
  ["198.18.0.0", 15, "ipv4"],
  ["198.51.100.0", 24, "ipv4"],
  ["203.0.113.0", 24, "ipv4"],
  ["224.0.0.0", 4, "ipv4"],
  ["240.0.0.0", 4, "ipv4"],
  ["fc00::", 7, "ipv6"],
  ["ff00::", 8, "ipv6"],
  ["2001:db8::", 32, "ipv6"],
];

function blockListOf(ranges: readonly Range[]): BlockList {
  const list = new BlockList();
  for (const [address, prefix, family] of ranges) list.addSubnet(address, prefix, family);
  return list;
}

const alwaysBlockedList = blockListOf(ALWAYS_BLOCKED);
const internalList = blockListOf(INTERNAL);

/** An address as `BlockList` takes it: brackets and an IPv6 zone (`%eth0`) removed; undefined if not an IP. */
function normalizeAddress(address: string): { address: string; family: Family } | undefined {
  let text = address;
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const version = isIP(text);
  if (version === 4) return { address: text, family: "ipv4" };
  if (version === 6) return { address: text, family: "ipv6" };
  return undefined;
}

/** Loopback, link-local or unspecified (also in their IPv4-mapped IPv6 forms); false for a non-IP. */
export function isAlwaysBlockedAddress(address: string): boolean {
  const ip = normalizeAddress(address);
  return ip !== undefined && alwaysBlockedList.check(ip.address, ip.family);
}

/** Any internal or special-use address (see INTERNAL); false for a non-IP. */
export function isInternalAddress(address: string): boolean {
  const ip = normalizeAddress(address);
  return ip !== undefined && internalList.check(ip.address, ip.family);
}

/** The literal IP a host names (brackets and zone removed), or undefined for a DNS name. */
function literalIp(host: string): string | undefined {
  return normalizeAddress(host)?.address;
}

// ---------------------------------------------------------------------------------------------
// allowed_ips

/** An endpoint's `allowed_ips`, parsed once. */
export interface AllowedIpList {
  readonly entries: readonly string[];
  contains(address: string): boolean;
}

/** Entries broader than this prefix are worth a warning (upstream logs one for IPv4 and IPv6 alike). */
const MIN_SAFE_PREFIX = 16;

/**
 * Parses `allowed_ips` (CIDRs or bare IPs) as upstream's loader: an unparsable entry and an entry that
 * overlaps loopback, link-local or unspecified are errors (upstream's messages); a CIDR broader than
 * /16 is a warning.
 */
export function parseAllowedIps(entries: readonly string[]): {
  list: AllowedIpList;
  errors: string[];
  warnings: string[];
} {
  const list = new BlockList();
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const entry of entries) {
    const parsed = parseCidr(entry.trim());
    if (parsed === undefined) {
      errors.push(`invalid CIDR/IP in allowed_ips: ${entry}`);
      continue;
    }
    if (overlapsAlwaysBlocked(parsed)) {
      errors.push(
        `allowed_ips entry ${entry} falls within always-blocked range (loopback/link-local/unspecified); remove this entry — SSRF hardening prevents traffic to these destinations regardless of policy`,
      );
      continue;
    }
    if (parsed.prefix < MIN_SAFE_PREFIX) {
      warnings.push(
        `allowed_ips entry has a very broad CIDR ${entry} (/${parsed.prefix}) < /${MIN_SAFE_PREFIX}; this may expose control-plane services on the same network`,
      );
    }
    list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  const frozen = Object.freeze([...entries]);
  return {
    list: {
      entries: frozen,
      contains(address) {
        const ip = normalizeAddress(address);
        return ip !== undefined && list.check(ip.address, ip.family);
      },
    },
    errors,
    warnings,
  };
}

interface Cidr {
  address: string;
  prefix: number;
  family: Family;
  /** The first and last address of the range, as integers. */
  first: bigint;
  last: bigint;
}

function parseCidr(entry: string): Cidr | undefined {
  const slash = entry.indexOf("/");
  const ip = normalizeAddress(slash < 0 ? entry : entry.slice(0, slash));
  if (ip === undefined || (slash >= 0 && entry.slice(0, slash).includes("%"))) return undefined;
  const bits = ip.family === "ipv4" ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const text = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text)) return undefined;
    prefix = Number(text);
    if (prefix > bits) return undefined;
  }
  const value = ip.family === "ipv4" ? ipv4ToBigInt(ip.address) : ipv6ToBigInt(ip.address);
  const hostBits = BigInt(bits - prefix);
  const first = (value >> hostBits) << hostBits;
  const last = first + (1n << hostBits) - 1n;
  return { address: ip.address, prefix, family: ip.family, first, last };
}

function ipv4ToBigInt(address: string): bigint {
  return address.split(".").reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function ipv6ToBigInt(address: string): bigint {
  let text = address;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    // An embedded dotted quad (`::ffff:1.2.3.4`) as its two hex groups.
    const v4 = Number(ipv4ToBigInt(tail));
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const restGroups = rest === undefined || rest === "" ? [] : rest.split(":");
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill("0"), ...restGroups];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(Number.parseInt(group, 16)), 0n);
}

/** Always-blocked ranges as integer spans, per family (the v4 ones also in IPv4-mapped form). */
const ALWAYS_BLOCKED_SPANS: ReadonlyArray<{ family: Family; first: bigint; last: bigint }> = [
  ...ALWAYS_BLOCKED,
  ["::ffff:127.0.0.0", 104, "ipv6"] as const,
  ["::ffff:169.254.0.0", 112, "ipv6"] as const,
  ["::ffff:0.0.0.0", 104, "ipv6"] as const,
].map(([address, prefix, family]) => {
  const cidr = parseCidr(`${address}/${prefix}`) as Cidr;
  return { family, first: cidr.first, last: cidr.last };
});

function overlapsAlwaysBlocked(cidr: Cidr): boolean {
  return ALWAYS_BLOCKED_SPANS.some(
    (span) => span.family === cidr.family && cidr.first <= span.last && span.first <= cidr.last,
  );
}

// ---------------------------------------------------------------------------------------------
// The check after DNS

/** Why the SSRF guard refused: an internal address with no `allowed_ips`, or the `allowed_ips` check. */
export type SsrfDenyKind = "internal_address" | "allowed_ips";

export type SsrfDecision = { allowed: true } | { allowed: false; kind: SsrfDenyKind; reason: string };

/**
 * The SSRF guard after an allowed CONNECT (upstream `resolve_and_reject_internal` /
 * `resolve_and_check_allowed_ips`), over the addresses `host` resolved to:
 * - the allowlist is the endpoint's `allowed_ips`; when it has none and `host` is a literal IP that
 *   is not always-blocked, that IP alone (the user named the destination);
 * - with an allowlist: control-plane ports are refused, then every address must be neither
 *   loopback/link-local/unspecified nor outside the allowlist;
 * - without one: every address must be outside the internal ranges.
 * No addresses at all is a denial. Reasons are upstream's.
 */
export function checkAddresses(
  allowedIps: AllowedIpList | undefined,
  host: string,
  port: number,
  addresses: readonly string[],
): SsrfDecision {
  if (addresses.length === 0) {
    return {
      allowed: false,
      kind: allowedIps === undefined && literalIp(host) === undefined ? "internal_address" : "allowed_ips",
      reason: `DNS resolution returned no addresses for ${host}:${port}`,
    };
  }
  let allowlist = allowedIps;
  if (allowlist === undefined) {
    const literal = literalIp(host);
    if (literal !== undefined && !isAlwaysBlockedAddress(literal))
      allowlist = parseAllowedIps([literal]).list;
  }
  if (allowlist === undefined) {
    for (const address of addresses) {
      if (isInternalAddress(address) || literalIp(address) === undefined) {
        return {
          allowed: false,
          kind: "internal_address",
          reason: `${host} resolves to internal address ${address}, connection rejected`,
        };
      }
    }
    return { allowed: true };
  }
  if (BLOCKED_CONTROL_PLANE_PORTS.includes(port)) {
    return {
      allowed: false,
      kind: "allowed_ips",
      reason: `port ${port} is a blocked control-plane port, connection rejected`,
    };
  }
  for (const address of addresses) {
    if (isAlwaysBlockedAddress(address) || literalIp(address) === undefined) {
      return {
        allowed: false,
        kind: "allowed_ips",
        reason: `${host} resolves to always-blocked address ${address}, connection rejected`,
      };
    }
    if (!allowlist.contains(address)) {
      return {
        allowed: false,
        kind: "allowed_ips",
        reason: `${host} resolves to ${address} which is not in allowed_ips, connection rejected`,
      };
    }
  }
  return { allowed: true };
}
