import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, readlink, stat } from "node:fs/promises";

/** Who opened a connection to the proxy (§3.8 identity resolution). */
export interface ProcessIdentity {
  pid: number;
  /** `/proc/<pid>/exe`, as the kernel resolved it. */
  path: string;
  /** Executables of the parent chain, nearest first (pid 1 and the supervisor excluded). */
  ancestors: string[];
  /** Absolute paths among the command line's arguments (scripts run by an interpreter). */
  cmdlinePaths: string[];
  /** Short name for log lines: `curl(88)`. */
  label: string;
}

/** The connection's peer as the proxy sees it (the client side, inside the namespace). */
export interface PeerAddress {
  address: string;
  port: number;
}

/**
 * Maps a proxy client's TCP peer to the process that owns the socket: the peer's entry in the
 * namespace's `net/tcp` (read through a process that lives in the namespace) gives the socket's
 * inode, a scan of `/proc/<pid>/fd` finds who holds it. Returns undefined when the socket is gone
 * or no process holds it (the caller denies).
 */
export async function resolvePeerProcess(
  procNetDir: string,
  peer: PeerAddress,
  proxy: PeerAddress,
  procRoot = "/proc",
): Promise<ProcessIdentity | undefined> {
  const inode = await socketInode(procNetDir, peer, proxy);
  if (inode === undefined) return undefined;
  const pid = await pidHoldingSocket(procRoot, inode);
  if (pid === undefined) return undefined;
  return describeProcess(procRoot, pid);
}

async function socketInode(procNetDir: string, peer: PeerAddress, proxy: PeerAddress) {
  const ipv6 = peer.address.includes(":") && !peer.address.startsWith("::ffff:");
  const table = await readFile(`${procNetDir}/${ipv6 ? "tcp6" : "tcp"}`, "utf8");
  const local = ipv6 ? undefined : `${hexIpv4(peer.address.replace(/^::ffff:/, ""))}:${hexPort(peer.port)}`;
  const remote = ipv6
    ? undefined
    : `${hexIpv4(proxy.address.replace(/^::ffff:/, ""))}:${hexPort(proxy.port)}`;
  for (const line of table.split("\n").slice(1)) {
    const columns = line.trim().split(/\s+/);
    if (columns.length < 10) continue;
    const [, localAddress, remoteAddress] = columns;
    if (local !== undefined) {
      if (localAddress !== local || remoteAddress !== remote) continue;
    } else if (
      !localAddress?.endsWith(`:${hexPort(peer.port)}`) ||
      !remoteAddress?.endsWith(`:${hexPort(proxy.port)}`)
    ) {
      continue;
    }
    const inode = columns[9];
    if (inode && inode !== "0") return inode;
  }
  return undefined;
}

/** /proc/net/tcp writes an IPv4 address as the host-order (little-endian on x86) u32 in hex. */
function hexIpv4(address: string): string {
  const octets = address.split(".").map(Number);
  return octets
    .reverse()
    .map((octet) => octet.toString(16).padStart(2, "0"))
    .join("")
    .toUpperCase();
}

const hexPort = (port: number) => port.toString(16).padStart(4, "0").toUpperCase();

async function pidHoldingSocket(procRoot: string, inode: string): Promise<number | undefined> {
  const wanted = `socket:[${inode}]`;
  const self = process.pid;
  const pids = (await readdir(procRoot)).filter((entry) => /^\d+$/.test(entry));
  // Newest processes first: the client most likely just started.
  pids.sort((a, b) => Number(b) - Number(a));
  for (const pid of pids) {
    if (Number(pid) === self) continue;
    let fds: string[];
    try {
      fds = await readdir(`${procRoot}/${pid}/fd`);
    } catch {
      continue; // gone, or a kernel thread
    }
    for (const fd of fds) {
      try {
        if ((await readlink(`${procRoot}/${pid}/fd/${fd}`)) === wanted) return Number(pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

async function describeProcess(procRoot: string, pid: number): Promise<ProcessIdentity | undefined> {
  let path: string;
  try {
    path = await readlink(`${procRoot}/${pid}/exe`);
  } catch {
    return undefined;
  }
  const ancestors: string[] = [];
  let current = await parentPid(procRoot, pid);
  for (
    let depth = 0;
    current !== undefined && current > 1 && current !== process.pid && depth < 64;
    depth++
  ) {
    try {
      ancestors.push(await readlink(`${procRoot}/${current}/exe`));
    } catch {
      break;
    }
    current = await parentPid(procRoot, current);
  }
  const cmdline = await readFile(`${procRoot}/${pid}/cmdline`, "utf8").catch(() => "");
  const args = cmdline.split("\0").filter((arg) => arg.length > 0);
  const cmdlinePaths = args.slice(1).filter((arg) => arg.startsWith("/"));
  const name = path.slice(path.lastIndexOf("/") + 1).replace(/ \(deleted\)$/, "");
  return { pid, path, ancestors, cmdlinePaths, label: `${name}(${pid})` };
}

async function parentPid(procRoot: string, pid: number): Promise<number | undefined> {
  const status = await readFile(`${procRoot}/${pid}/status`, "utf8").catch(() => "");
  const match = /^PPid:\s+(\d+)/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/**
 * Trust on first use of binaries (§3.8): the first SHA-256 seen for a path is kept; a later
 * different hash means the binary was replaced under the same name and its connections are denied.
 * The hash is recomputed only when the file's device, inode, size or mtime change.
 */
export class BinaryTrustCache {
  private readonly trusted = new Map<string, { hash: string; key: string }>();

  /** `undefined`: trusted; otherwise why not. */
  async check(pid: number, path: string, procRoot = "/proc"): Promise<string | undefined> {
    const exe = `${procRoot}/${pid}/exe`;
    let key: string;
    try {
      const info = await stat(exe);
      key = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`;
    } catch (error) {
      return `cannot read the binary of pid ${pid}: ${(error as Error).message}`;
    }
    const known = this.trusted.get(path);
    if (known?.key === key) return undefined;
    let hash: string;
    try {
      hash = await sha256File(exe);
    } catch (error) {
      return `cannot hash ${path}: ${(error as Error).message}`;
    }
    if (!known) {
      this.trusted.set(path, { hash, key });
      return undefined;
    }
    if (known.hash === hash) {
      this.trusted.set(path, { hash, key });
      return undefined;
    }
    return `binary '${path}' changed since first use (sha256 ${known.hash.slice(0, 12)} -> ${hash.slice(0, 12)})`;
  }
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
