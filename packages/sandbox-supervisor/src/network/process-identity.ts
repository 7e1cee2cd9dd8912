import { readdirSync, readFileSync, readlinkSync } from "node:fs";

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

/** How many recent owners are tried first (a client that connected before likely connects again). */
const RECENT_OWNERS = 16;
/** How many of them are tried before /proc is even listed (npm, pip, git: one process, many connections). */
const RECENT_OWNERS_BEFORE_LISTING = 4;
/** PIDs whose namespace is read between two yields to the event loop on a full pass. */
const PIDS_PER_SLICE = 256;

/**
 * Maps a proxy client's TCP peer to the process that owns the socket (§3.8 identity resolution):
 * the peer's entry in the namespace's `net/tcp` (read once per lookup through a process that lives
 * in the namespace) gives the socket's inode; the process holding `socket:[inode]` among its
 * `/proc/<pid>/fd` is the owner.
 *
 * Only processes in the sandbox's network namespace are searched (`/proc/<pid>/ns/net` equal to the
 * namespace's own): in a VM most processes are the supervisor's and kernel threads, on a host
 * thousands. The namespace of each PID is cached for as long as the PID is listed, and the recent
 * owners are tried first, then PIDs that appeared since the last lookup. Caches only order the
 * search: an owner is returned only after its descriptor was read in this lookup and its namespace
 * re-read after that, and a lookup the cached view cannot answer re-reads every PID's namespace
 * (a cached PID may have been reused or have entered the namespace since).
 *
 * procfs reads are synchronous on purpose: each is a few microseconds of kernel memory (the TCP
 * table: see `socketInode`), while an awaited call costs a threadpool round trip (the old
 * per-descriptor `await readlink` scan of every process took 35–75 ms per connection on a loaded
 * host).
 */
export class ProcessIdentityResolver {
  /** pid → `net:[inode]` as last read (dropped when the pid is no longer listed). */
  private readonly namespaceOf = new Map<number, string>();
  /** Owners found by recent lookups, most recent first. */
  private recentOwners: number[] = [];

  constructor(
    private readonly procRoot = "/proc",
    private readonly selfPid = process.pid,
  ) {}

  /**
   * `procNetDir` is `<procRoot>/<pid>/net` of a process inside the sandbox namespace; that
   * process's `ns/net` names the namespace. Undefined when the socket is gone or no process in the
   * namespace holds it (the caller denies).
   */
  async resolve(
    procNetDir: string,
    peer: PeerAddress,
    proxy: PeerAddress,
  ): Promise<ProcessIdentity | undefined> {
    const inode = socketInode(procNetDir, peer, proxy);
    if (inode === undefined) return undefined;
    const namespace = readLink(`${procNetDir.replace(/\/net\/?$/, "")}/ns/net`);
    if (namespace === undefined) return undefined;
    const pid = await this.ownerOf(`socket:[${inode}]`, namespace);
    if (pid === undefined) return undefined;
    const identity = describeProcess(this.procRoot, pid, this.selfPid);
    // The pid may have exited and been reused while it was described: the socket must still be its.
    if (!identity || !this.holds(pid, `socket:[${inode}]`)) return undefined;
    this.recentOwners = [pid, ...this.recentOwners.filter((other) => other !== pid)].slice(0, RECENT_OWNERS);
    return identity;
  }

  private async ownerOf(socket: string, namespace: string): Promise<number | undefined> {
    const tried = this.recentOwners
      .slice(0, RECENT_OWNERS_BEFORE_LISTING)
      .filter((pid) => this.namespaceOf.get(pid) === namespace);
    const recentHolder = this.firstHolder(tried, socket, namespace);
    if (recentHolder !== undefined) return recentHolder;
    const listed = this.listPids();
    const fresh = new Set<number>();
    for (const pid of listed) {
      if (this.namespaceOf.has(pid)) continue;
      this.readNamespace(pid);
      fresh.add(pid);
    }
    for (const pid of this.namespaceOf.keys()) if (!listed.has(pid)) this.namespaceOf.delete(pid);
    const members = [...listed].filter((pid) => this.namespaceOf.get(pid) === namespace);
    const recent = this.recentOwners.filter(
      (pid) => this.namespaceOf.get(pid) === namespace && listed.has(pid) && !tried.includes(pid),
    );
    const ordered = [
      ...recent,
      ...members.filter((pid) => fresh.has(pid) && !recent.includes(pid)).sort((a, b) => b - a),
      ...members
        .filter((pid) => !fresh.has(pid) && !recent.includes(pid) && !tried.includes(pid))
        .sort((a, b) => b - a),
    ];
    const found = this.firstHolder(ordered, socket, namespace);
    if (found !== undefined) return found;
    // The cached view missed: a PID read as outside may since have entered the namespace (a process
    // that joins it after it started) or been reused. Re-read every listed PID, a slice at a time.
    const searched = new Set([...tried, ...ordered]);
    const again = [...this.listPids()].sort((a, b) => b - a);
    for (let start = 0; start < again.length; start += PIDS_PER_SLICE) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve));
      const slice = again.slice(start, start + PIDS_PER_SLICE);
      const inside = slice.filter((pid) => this.readNamespace(pid) === namespace && !searched.has(pid));
      const holder = this.firstHolder(inside, socket, namespace);
      if (holder !== undefined) return holder;
    }
    return undefined;
  }

  /** The first of `pids` holding `socket`, its namespace re-read after its descriptors. */
  private firstHolder(pids: number[], socket: string, namespace: string): number | undefined {
    for (const pid of pids) {
      if (this.holds(pid, socket) && this.readNamespace(pid) === namespace) return pid;
    }
    return undefined;
  }

  private holds(pid: number, socket: string): boolean {
    const fdDir = `${this.procRoot}/${pid}/fd`;
    let fds: string[];
    try {
      fds = readdirSync(fdDir);
    } catch {
      return false; // gone, or a kernel thread
    }
    return fds.some((fd) => readLink(`${fdDir}/${fd}`) === socket);
  }

  private readNamespace(pid: number): string | undefined {
    const namespace = readLink(`${this.procRoot}/${pid}/ns/net`);
    if (namespace === undefined) this.namespaceOf.delete(pid);
    else this.namespaceOf.set(pid, namespace);
    return namespace;
  }

  private listPids(): Set<number> {
    const pids = new Set<number>();
    for (const entry of readdirSync(this.procRoot)) {
      const pid = Number(entry);
      if (Number.isInteger(pid) && pid > 0 && pid !== this.selfPid) pids.add(pid);
    }
    return pids;
  }
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined; // gone, closed meanwhile, or not ours to read
  }
}

function socketInode(procNetDir: string, peer: PeerAddress, proxy: PeerAddress): string | undefined {
  const ipv6 = peer.address.includes(":") && !peer.address.startsWith("::ffff:");
  // The kernel walks every bucket of the namespace's TCP hash table for this read: 0.08 ms for a
  // namespace with a table of its own (net.ipv4.tcp_child_ehash_entries set when it is created),
  // 5-13 ms through the host's shared 262144 buckets on the loaded 2-core test host (a small guest's
  // is far smaller). Read synchronously all the same: measured, an asynchronous read added a
  // threadpool round trip of a few milliseconds per connection under load (bench/README.md).
  const table = readText(`${procNetDir}/${ipv6 ? "tcp6" : "tcp"}`);
  const local = ipv6 ? undefined : `${hexIpv4(peer.address.replace(/^::ffff:/, ""))}:${hexPort(peer.port)}`;
  const remote = ipv6
    ? undefined
    : `${hexIpv4(proxy.address.replace(/^::ffff:/, ""))}:${hexPort(proxy.port)}`;
  // IPv4: look for the line by its address pair rather than splitting a table that holds every
  // TIME_WAIT socket of the last minute (an agent's many short connections).
  const lines =
    local === undefined ? table.split("\n").slice(1) : linesContaining(table, ` ${local} ${remote} `);
  for (const line of lines) {
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

/** The lines of `text` that contain `needle`. */
function linesContaining(text: string, needle: string): string[] {
  const found: string[] = [];
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) {
    const start = text.lastIndexOf("\n", at) + 1;
    const end = text.indexOf("\n", at);
    found.push(text.slice(start, end === -1 ? text.length : end));
  }
  return found;
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

function describeProcess(procRoot: string, pid: number, selfPid: number): ProcessIdentity | undefined {
  const path = readLink(`${procRoot}/${pid}/exe`);
  if (path === undefined) return undefined;
  const ancestors: string[] = [];
  let current = parentPid(procRoot, pid);
  for (let depth = 0; current !== undefined && current > 1 && current !== selfPid && depth < 64; depth++) {
    const exe = readLink(`${procRoot}/${current}/exe`);
    if (exe === undefined) break;
    ancestors.push(exe);
    current = parentPid(procRoot, current);
  }
  const cmdline = readText(`${procRoot}/${pid}/cmdline`);
  const args = cmdline.split("\0").filter((arg) => arg.length > 0);
  const cmdlinePaths = args.slice(1).filter((arg) => arg.startsWith("/"));
  const name = path.slice(path.lastIndexOf("/") + 1).replace(/ \(deleted\)$/, "");
  return { pid, path, ancestors, cmdlinePaths, label: `${name}(${pid})` };
}

function parentPid(procRoot: string, pid: number): number | undefined {
  const match = /^PPid:\s+(\d+)/m.exec(readText(`${procRoot}/${pid}/status`));
  return match ? Number(match[1]) : undefined;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
