import { readFile, writeFile } from "node:fs/promises";

const CHILD_EHASH = "/proc/sys/net/ipv4/tcp_child_ehash_entries";
/** Buckets of the namespace's own TCP hash table: a sandbox has few connections. */
export const SANDBOX_TCP_EHASH_ENTRIES = 1024;
/**
 * TIME_WAIT sockets the namespace keeps at most. Each one is a line of the namespace's `net/tcp`
 * for a minute, and the proxy reads that table for every new connection: an agent's short
 * connections (curl, git, pip: the client closes first) grew it to 500 lines and ~0.4 ms per read
 * in `bench/proxy-bench.ts`. Over the namespace's only link, a veth to the proxy, there are no late
 * duplicates for TIME_WAIT to guard against; past the cap a closed socket is simply freed.
 */
export const SANDBOX_TCP_MAX_TIME_WAIT = 64;
/**
 * Shell, run inside the namespace (net sysctls are the opening process's namespace's), that sets
 * the cap. Best effort: a read-only /proc/sys (a container) only costs the longer reads.
 */
export const CAP_TIME_WAIT_SHELL = `{ echo ${SANDBOX_TCP_MAX_TIME_WAIT} > /proc/sys/net/ipv4/tcp_max_tw_buckets; } 2>/dev/null`;

/**
 * Runs `create` (which makes a network namespace) with `tcp_child_ehash_entries` set, so the new
 * namespace gets its own small TCP hash table instead of sharing the parent's (Linux ≥ 6.1). The
 * proxy reads the namespace's `net/tcp` for every new connection, and the kernel walks the whole
 * table for it: 5–13 ms with the host's 262,144 buckets, 0.08 ms with 1024 (bench/proxy-bench.ts
 * `--netns-ehash`). Best effort: an older kernel or a read-only /proc only costs that time.
 *
 * The sysctl is the parent namespace's and read when a namespace is made, so it is set just for the
 * creation and put back. When it already holds our value (another supervisor creating its namespace
 * at the same moment, or an administrator's choice) it is left alone, so concurrent creations never
 * leave it changed.
 */
export async function withOwnTcpHashTable<T>(create: () => Promise<T>, sysctl = CHILD_EHASH): Promise<T> {
  const wanted = String(SANDBOX_TCP_EHASH_ENTRIES);
  const previous = await readFile(sysctl, "utf8").then(
    (text) => text.trim(),
    () => undefined,
  );
  const wrote =
    previous !== undefined &&
    previous !== wanted &&
    (await writeFile(sysctl, wanted).then(
      () => true,
      () => false,
    ));
  try {
    return await create();
  } finally {
    if (wrote) {
      const now = await readFile(sysctl, "utf8").then(
        (text) => text.trim(),
        () => undefined,
      );
      if (now === wanted) await writeFile(sysctl, previous).catch(() => undefined);
    }
  }
}
