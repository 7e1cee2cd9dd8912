import net from "node:net";
import { OpenShellError, sleep } from "@openshell/core";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { recordForward } from "../../forward/forward-registry.js";
import { getReadySandbox } from "../../sandbox/sandbox-lookup.js";
import { runSshAttached, sessionProxyCommand, spawnSsh, sshArgs } from "../../ssh/sandbox-ssh.js";
import type { sandboxForwardCommand } from "./forward.js";

export function parseForwardSpec(spec: string): { bind: string; port: number } {
  const colon = spec.lastIndexOf(":");
  const bind = colon < 0 ? "127.0.0.1" : spec.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(colon < 0 ? spec : spec.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65_535 || !bind)
    throw new OpenShellError(
      "invalid_argument",
      `bad port '${spec}': use PORT or BIND:PORT, e.g. 8000 or 127.0.0.1:8000`,
    );
  return { bind, port };
}

function accepts(bind: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: bind === "0.0.0.0" ? "127.0.0.1" : bind, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function run(input: CommandInput<typeof sandboxForwardCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const { name, port: spec } = input.args;
  const { bind, port } = parseForwardSpec(spec);
  if (await accepts(bind, port))
    throw new OpenShellError(
      "failed_precondition",
      `local port ${bind}:${port} is already in use; pick another port`,
    );
  const target = ctx.target();
  ctx.rememberSandbox(target, name);
  const proxy = await ctx.withGateway(async (client) => {
    const sandbox = await getReadySandbox(client, name);
    return sessionProxyCommand(ctx, client, target, sandbox);
  }, target);
  const args = sshArgs(proxy, [
    "-N",
    "-o",
    "ExitOnForwardFailure=yes",
    "-L",
    `${bind}:${port}:127.0.0.1:${port}`,
  ]);
  if (!input.options.background) {
    ctx.output.success(`Forwarding ${bind}:${port} → ${name}:${port} (Ctrl-C to stop)`);
    return runSshAttached(args);
  }
  const child = spawnSsh(args, { detached: true, stdio: "ignore" });
  child.unref();
  if (!child.pid) throw new OpenShellError("internal", "could not start ssh");
  let exited = false;
  child.once("exit", () => (exited = true));
  const deadline = Date.now() + 30_000;
  while (!(await accepts(bind, port))) {
    if (exited || Date.now() > deadline) {
      if (!exited) process.kill(child.pid, "SIGTERM");
      throw new OpenShellError(
        "unavailable",
        `the forward of ${bind}:${port} to sandbox '${name}' did not come up`,
      );
    }
    await sleep(100);
  }
  recordForward(ctx.paths, { sandbox: name, port, bind, pid: child.pid });
  ctx.output.success(
    `Forwarding ${bind}:${port} → ${name}:${port} in the background (pid ${child.pid}); stop with: openshell forward stop ${port}`,
  );
  return 0;
}
