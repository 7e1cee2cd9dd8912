import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readlink, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { emitOcsf, type Logger, OpenShellError } from "@openshell/core";
import { endedWithSupervisor } from "../process/parent-death-signal.js";
import { CAP_TIME_WAIT_SHELL, withOwnTcpHashTable } from "./own-tcp-hash-table.js";
import { caEnvironment, DEFAULT_TLS_DIR } from "./sandbox-ca.js";
import { TOOL_PATH } from "./tool-path.js";

const execFileAsync = promisify(execFile);

/** Upstream's addresses (§3.3 step 7): the proxy listens on the host side. */
const SANDBOX_NETWORK_DEFAULTS = {
  name: "openshell-sandbox",
  hostAddress: "10.200.0.1",
  sandboxAddress: "10.200.0.2",
  prefixLength: 24,
  proxyPort: 3128,
} as const;

/**
 * §3.7's CA variables: the supervisor writes the sandbox CA (`SandboxCa`) to
 * /etc/openshell-tls/openshell-ca.pem (NODE_EXTRA_CA_CERTS) and the system bundle plus it to
 * /etc/openshell-tls/ca-bundle.pem (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
 * GIT_SSL_CAINFO) before any child starts.
 */

/** The table installed inside the namespace (the guest's own host firewall is `inet openshell`). */
const TABLE = "openshell_sandbox";

/** Bypass attempts traced per second at most (the rest are still rejected, just not logged). */
const BYPASS_TRACE_RATE = "20/second burst 50 packets";

export interface SandboxNetworkOptions {
  logger: Logger;
  /** Namespace name (`/run/netns/<name>`); unique per test. */
  name?: string;
  hostAddress?: string;
  sandboxAddress?: string;
  prefixLength?: number;
  proxyPort?: number;
  /** veth names (at most 15 bytes); default `veth-h-<suffix>`/`veth-s-<suffix>` from the name. */
  vethHost?: string;
  vethSandbox?: string;
  /** Where the sandbox CA files are (the CA variables of `childEnvironment()`); none: no variables. */
  tlsDir?: string;
}

/** A connect that ignored the proxy, as the nftables trace saw its first packet. */
export interface BypassAttempt {
  protocol: string;
  source: string;
  sourcePort: number | undefined;
  destination: string;
  destinationPort: number | undefined;
}

/**
 * The sandbox's network namespace: a veth pair whose sandbox end is the namespace's only interface
 * besides loopback, and nftables rules in the namespace under which the only reachable destination
 * is the proxy (host side, port 3128). Everything else is rejected at once (TCP reset, ICMP
 * admin-prohibited otherwise) so a client that ignores the proxy fails fast, and its first packet
 * is traced (`meta nftrace`) to a `nft monitor trace` running in the namespace, which becomes a
 * bypass event. No conntrack: the proxy's own connections are matched by address and port, and the
 * trace needs neither the kernel log (nf_log is off in non-initial namespaces) nor NFLOG.
 * No DNS in the sandbox: CONNECT and absolute-form requests carry host names, the proxy resolves.
 */
export class SandboxNetwork {
  private monitor: ChildProcess | undefined;
  private closed = false;

  private constructor(
    readonly name: string,
    readonly hostAddress: string,
    readonly sandboxAddress: string,
    readonly proxyPort: number,
    readonly vethHost: string,
    private logger: Logger,
    private readonly tlsDir: string | undefined,
  ) {}

  /** The namespace's name in a sandbox (`/run/netns/openshell-sandbox`). */
  static readonly defaultName: string = SANDBOX_NETWORK_DEFAULTS.name;

  /** `childEnvironment()` of a network on the default addresses, known before it exists. */
  static defaultChildEnvironment(tlsDir: string = DEFAULT_TLS_DIR): Record<string, string> {
    const d = SANDBOX_NETWORK_DEFAULTS;
    return proxyEnvironment(`http://${d.hostAddress}:${d.proxyPort}`, tlsDir);
  }

  /** The namespace children join (`setns`, or the launcher's `--netns`). */
  get netnsPath(): string {
    return `/run/netns/${this.name}`;
  }

  /**
   * `/proc/<pid>/net` of a process inside the namespace (the bypass monitor): its `tcp` table shows
   * the sandbox side of every proxy connection, which the proxy maps to the client process.
   */
  get procNetDir(): string | undefined {
    const pid = this.monitor?.exitCode === null ? this.monitor.pid : undefined;
    return pid === undefined ? undefined : `/proc/${pid}/net`;
  }

  get proxyUrl(): string {
    return `http://${this.hostAddress}:${this.proxyPort}`;
  }

  /**
   * Creates the namespace, veth pair, routes and rules, and starts the bypass monitor. Any failure
   * undoes what was made and throws: the supervisor must not run children unconfined.
   */
  static async create(
    options: SandboxNetworkOptions,
    onBypass?: (attempt: BypassAttempt) => void,
  ): Promise<SandboxNetwork> {
    const d = SANDBOX_NETWORK_DEFAULTS;
    const name = options.name ?? d.name;
    const suffix = name.replace(/[^A-Za-z0-9]/g, "").slice(-8);
    const network = new SandboxNetwork(
      name,
      options.hostAddress ?? d.hostAddress,
      options.sandboxAddress ?? d.sandboxAddress,
      options.proxyPort ?? d.proxyPort,
      options.vethHost ?? `veth-h-${suffix}`,
      options.logger,
      options.tlsDir,
    );
    const vethSandbox = options.vethSandbox ?? `veth-s-${suffix}`;
    const prefix = options.prefixLength ?? d.prefixLength;
    try {
      // A namespace left by a previous supervisor of this sandbox (a crash) is replaced.
      if (existsSync(network.netnsPath)) await run("ip", ["netns", "delete", name]).catch(() => undefined);
      if (existsSync(`/sys/class/net/${network.vethHost}`)) {
        await run("ip", ["link", "delete", network.vethHost]).catch(() => undefined);
      }
      // Three processes in all (batches): each exec costs tens of ms in a VM under TCG.
      await withOwnTcpHashTable(() =>
        run(
          "ip",
          ["-batch", "-"],
          [
            `netns add ${name}`,
            `link add ${network.vethHost} type veth peer name ${vethSandbox} netns ${name}`,
            `addr add ${network.hostAddress}/${prefix} dev ${network.vethHost}`,
            `link set ${network.vethHost} up`,
            "",
          ].join("\n"),
        ),
      );
      await run(
        "ip",
        ["-n", name, "-batch", "-"],
        [
          "link set lo up",
          `addr add ${network.sandboxAddress}/${prefix} dev ${vethSandbox}`,
          `link set ${vethSandbox} up`,
          `route add default via ${network.hostAddress}`,
          "",
        ].join("\n"),
      );
      // The TIME_WAIT cap rides on the ruleset's process: one exec fewer.
      await run(
        "ip",
        ["netns", "exec", name, "sh", "-c", `${CAP_TIME_WAIT_SHELL}; exec nft -f -`],
        network.rules(),
      );
      await network.startMonitor(onBypass);
    } catch (error) {
      await network.destroy();
      const reason = error instanceof Error ? error.message : String(error);
      throw new OpenShellError(
        "failed_precondition",
        `network namespace creation failed and proxy mode requires isolation: ${reason}. Ensure CAP_NET_ADMIN and CAP_SYS_ADMIN are available, iproute2 and nftables are installed and the kernel has veth and nf_tables.`,
      );
    }
    network.announce("");
    return network;
  }

  /**
   * From now on its events (bypass attempts, a monitor that stops) go to `logger`: a network made
   * in a VM template, before the sandbox's identity and logger existed, is handed to the sandbox's.
   */
  reportTo(logger: Logger): void {
    this.logger = logger;
    this.announce(" (made in the VM template)");
  }

  private announce(how: string): void {
    emitOcsf(this.logger, {
      class: "CONFIG",
      activity: "ENABLED",
      message: `network isolation: namespace ${this.name}, sandbox ${this.sandboxAddress} -> proxy ${this.hostAddress}:${this.proxyPort} only${how}`,
      fields: { netns: this.netnsPath, veth: this.vethHost },
    });
  }

  /** The nftables ruleset inside the namespace (exported for the docs and tests). */
  rules(): string {
    return `table inet ${TABLE} {
  chain output {
    type filter hook output priority filter; policy accept;
    oifname "lo" accept
    ip daddr ${this.hostAddress} tcp dport ${this.proxyPort} accept
    tcp flags & (syn | ack) == syn limit rate ${BYPASS_TRACE_RATE} meta nftrace set 1
    meta l4proto udp limit rate ${BYPASS_TRACE_RATE} meta nftrace set 1
    meta l4proto tcp reject with tcp reset
    reject with icmpx admin-prohibited
  }
}
`;
  }

  /** §3.7's proxy variables, and the CA variables when the network knows where the CA is. */
  childEnvironment(): Record<string, string> {
    return proxyEnvironment(this.proxyUrl, this.tlsDir);
  }

  /** Stops the monitor and deletes the namespace (which deletes the veth pair with it). */
  async destroy(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.monitor?.kill("SIGTERM");
    await run("ip", ["netns", "delete", this.name]).catch(() => undefined);
    await run("ip", ["link", "delete", this.vethHost]).catch(() => undefined);
  }

  private async startMonitor(onBypass: ((attempt: BypassAttempt) => void) | undefined): Promise<void> {
    // nft block-buffers its output into a pipe: stdbuf makes each event a line as it happens.
    const command = endedWithSupervisor("ip", [
      "netns",
      "exec",
      this.name,
      "stdbuf",
      "-oL",
      "nft",
      "monitor",
      "trace",
    ]);
    const monitor = spawn(command.file, command.args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: TOOL_PATH },
    });
    this.monitor = monitor;
    await new Promise<void>((resolve, reject) => {
      monitor.once("spawn", resolve);
      monitor.once("error", reject);
    });
    // Its /proc/<pid>/net is the namespace's only once `ip netns exec` has entered it.
    const namespace = `net:[${(await stat(this.netnsPath)).ino}]`;
    for (let waited = 0; ; waited += 10) {
      const current = await readlink(`/proc/${monitor.pid}/ns/net`).catch(() => "");
      if (current === namespace) break;
      if (waited >= 5000 || monitor.exitCode !== null) {
        throw new Error(`the bypass monitor (nft monitor trace) did not enter the namespace`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    let stderr = "";
    monitor.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-500);
    });
    monitor.on("exit", (code, signal) => {
      if (this.closed) return;
      // Connections are still rejected; only their events are lost.
      emitOcsf(this.logger, {
        class: "FINDING",
        activity: "DEGRADED",
        severity: "HIGH",
        message: `bypass monitor stopped (${signal ?? `exit ${code}`}): direct connections are still rejected but no longer logged ${stderr.trim()}`,
      });
    });
    createInterface({ input: monitor.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const attempt = parseTracePacket(line);
      if (!attempt) return;
      const target = `${attempt.destination}:${attempt.destinationPort ?? "?"}`;
      emitOcsf(this.logger, {
        class: "NET",
        activity: "REFUSE",
        severity: "MEDIUM",
        disposition: "BLOCKED",
        message: `bypass attempt ${attempt.protocol} ${attempt.source}:${attempt.sourcePort ?? "?"} -> ${target} rejected: only the proxy ${this.hostAddress}:${this.proxyPort} is reachable [reason:bypass]`,
        fields: {
          reason: "bypass",
          protocol: attempt.protocol,
          src_port: attempt.sourcePort,
          dst_ip: attempt.destination,
          dst_port: attempt.destinationPort,
        },
      });
      onBypass?.(attempt);
    });
  }
}

/** §3.7's proxy variables for children. */
function proxyEnvironment(proxy: string, tlsDir: string | undefined): Record<string, string> {
  const noProxy = "127.0.0.1,localhost,::1";
  return {
    ...(tlsDir === undefined ? {} : caEnvironment(tlsDir)),
    ALL_PROXY: proxy,
    HTTP_PROXY: proxy,
    HTTPS_PROXY: proxy,
    http_proxy: proxy,
    https_proxy: proxy,
    grpc_proxy: proxy,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
    NODE_USE_ENV_PROXY: "1",
  };
}

/**
 * The `packet:` line of an `nft monitor trace` event, e.g.
 * `trace id 06d70103 inet openshell_sandbox output packet: oif "veth-s-x" ip saddr 10.200.0.2 ip daddr
 * 1.2.3.4 … tcp sport 48774 tcp dport 81 tcp flags == syn …`; other lines of the trace give undefined.
 */
function parseTracePacket(line: string): BypassAttempt | undefined {
  if (!line.includes(` ${TABLE} output packet:`)) return undefined;
  const field = (pattern: RegExp) => pattern.exec(line)?.[1];
  const destination = field(/\bip6? daddr (\S+)/);
  if (!destination) return undefined;
  const protocol = field(/\b(tcp|udp|icmp|icmpv6|sctp) /) ?? field(/\bip protocol (\S+)/) ?? "ip";
  const port = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  return {
    protocol,
    source: field(/\bip6? saddr (\S+)/) ?? "?",
    sourcePort: port(field(/\b(?:tcp|udp) sport (\d+)/)),
    destination,
    destinationPort: port(field(/\b(?:tcp|udp) dport (\d+)/)),
  };
}

async function run(file: string, args: string[], input?: string): Promise<void> {
  const child = execFileAsync(file, args, { env: { PATH: TOOL_PATH }, timeout: 10_000 });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    await child;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`${file} ${args.join(" ")}: ${stderr || (error as Error).message}`);
  }
}
