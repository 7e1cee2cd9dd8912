import { readFileSync } from "node:fs";

/** Resident memory of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

/**
 * A process's resident memory in KiB as /proc/<pid>/smaps splits it: the brk heap (glibc's main
 * malloc arena), anonymous mappings (V8's heap pages, other malloc arenas, large mallocs, thread
 * stacks) and file-backed mappings (the node binary, libraries).
 */
export function smapsKiB(pid: number): { rss: number; brk: number; anonMappings: number; file: number } {
  const totals = { rss: 0, brk: 0, anonMappings: 0, file: 0 };
  let kind: "brk" | "anonMappings" | "file" = "anonMappings";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const name = header[1] ?? "";
      kind = name === "[heap]" ? "brk" : name === "" || name.startsWith("[") ? "anonMappings" : "file";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) {
      totals[kind] += Number(rss[1]);
      totals.rss += Number(rss[1]);
    }
  }
  return totals;
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ; 100 on every Linux we run on). */
const USER_HZ = 100;

/** CPU time (user + system, all threads) a process has used so far, in ms (10 ms resolution). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/** Read and write system calls a process has made so far (/proc/<pid>/io syscr + syscw; needs root or the same user). */
export function ioSyscalls(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (name: string) =>
    Number(/^(\w+): (\d+)$/m.exec(io.split("\n").find((l) => l.startsWith(`${name}:`)) ?? "")?.[2] ?? 0);
  return field("syscr") + field("syscw");
}
