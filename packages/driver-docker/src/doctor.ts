import { basename } from "node:path";
import { OpenShellError, parseFlags } from "@openshell/core";
import { connectDocker } from "./docker-connection.js";
import { DOCKER_DRIVER_FLAGS } from "./docker-flags.js";

/**
 * `openshell-driver-docker doctor [--docker-host URL] [--runtime NAME]`: whether this driver can
 * run sandboxes on the daemon, one line per check, each failing one with its fix. Exit 0 when all pass.
 */
export async function doctor(argv: string[]): Promise<number> {
  const lines: string[] = [];
  let ok = true;
  const fail = (line: string) => {
    ok = false;
    lines.push(`FAIL ${line}`);
  };
  try {
    const { values } = parseFlags(DOCKER_DRIVER_FLAGS, argv, process.env, {
      binary: "openshell-driver-docker doctor",
    });
    const { docker, describe } = await connectDocker(values["docker-host"]);
    const info = (await docker.info()) as {
      ServerVersion?: string;
      Driver?: string;
      DefaultRuntime?: string;
      Runtimes?: Record<string, unknown>;
      CgroupVersion?: string;
      SecurityOptions?: string[];
    };
    lines.push(`ok   daemon: ${describe} answers (Docker ${info.ServerVersion ?? "?"})`);
    const storage = info.Driver ?? "";
    if (["overlay2", "btrfs", "zfs", "fuse-overlayfs"].includes(storage))
      lines.push(`ok   storage driver: ${storage}`);
    else if (storage === "vfs")
      fail(
        'storage driver: vfs copies every image layer for each container (slow creates, much disk); configure overlay2 in /etc/docker/daemon.json ("storage-driver": "overlay2") on an ext4 or xfs data root',
      );
    else lines.push(`ok   storage driver: ${storage || "unknown"}`);
    const runtimes = Object.keys(info.Runtimes ?? {});
    const wanted = values.runtime;
    if (wanted && !runtimes.includes(wanted)) {
      fail(
        `runtime: ${wanted} is not one of the daemon's runtimes (${runtimes.join(", ")}); install it and register it under "runtimes" in /etc/docker/daemon.json, or drop --runtime`,
      );
    } else {
      const name = wanted ?? info.DefaultRuntime ?? "runc";
      lines.push(`ok   runtime: ${name} (available: ${runtimes.join(", ") || "?"})`);
      const path = (info.Runtimes?.[name] as { path?: unknown } | undefined)?.path;
      if (name === "runsc" || (typeof path === "string" && basename(path) === "runsc"))
        lines.push(
          `warn runtime: ${name} is gVisor: the supervisor cannot build the sandbox's network namespace under it (Debian 12's runsc: no veth, nftables or netns mounts; with its default sandbox network it refuses the container on kernels whose every netns has net.core.rmem_default), so sandboxes fail closed and go to ERROR with the reason; use runc (drop --runtime)`,
        );
    }
    if ((info.SecurityOptions ?? []).some((o) => o.includes("name=rootless"))) {
      fail(
        "rootless Docker: the supervisor needs NET_ADMIN and SYS_ADMIN over the container's own namespaces, which a rootless daemon cannot grant here; use a rootful daemon (DOCKER_HOST=unix:///var/run/docker.sock)",
      );
    }
  } catch (error) {
    fail(OpenShellError.from(error).message);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  return ok ? 0 : 1;
}
