import { BlockList, isIP } from "node:net";

function loopbackRanges(): BlockList {
  const ranges = new BlockList();
  ranges.addSubnet("127.0.0.0", 8, "ipv4");
  ranges.addAddress("::1", "ipv6");
  return ranges;
}

/** Whether `address` (a literal IP, brackets and IPv4-mapped forms allowed) is a loopback address. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  let ip = address.replace(/^\[(.*)\]$/, "$1");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) ip = mapped[1];
  const family = isIP(ip);
  if (family === 0) return false;
  return loopbackRanges().check(ip, family === 4 ? "ipv4" : "ipv6");
}

/** Destinations `ssh -L` may reach: loopback literals and the name localhost. */
export function isLoopbackHost(host: string): boolean {
  return host.toLowerCase() === "localhost" || isLoopbackAddress(host);
}

export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}
