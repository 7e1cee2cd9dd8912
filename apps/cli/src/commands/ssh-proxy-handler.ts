import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { Backoff, OpenShellError, sleep } from "@openshell/core";
import { CliContext } from "../cli-context.js";
import type { CommandInput } from "../command-spec/program-spec.js";
import { getSandbox } from "../sandbox/sandbox-lookup.js";
import { connectUrl } from "../ssh/sandbox-ssh.js";
import { NOT_READY_RETRY_WINDOW_MS, runSshProxy } from "../ssh/ssh-proxy.js";
import type { sshProxyCommand } from "./ssh-proxy.js";

/**
 * Token mode (`--gateway URL --sandbox-id --token`, what connect/exec use) or name mode
 * (`--gateway-name N --name SANDBOX`, what ssh-config writes: a fresh session per connection).
 */
export async function run(input: CommandInput<typeof sshProxyCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const { options } = input;
  const gatewayName = options.gatewayName;
  const stored = gatewayName ? ctx.registry.readClientTls(gatewayName) : undefined;
  const tls = {
    ...(stored
      ? { ca: stored.ca, ...(stored.cert && stored.key ? { cert: stored.cert, key: stored.key } : {}) }
      : {}),
    ...(options.tlsCa ? { ca: readFileSync(options.tlsCa) } : {}),
    ...(options.tlsCert ? { cert: readFileSync(options.tlsCert) } : {}),
    ...(options.tlsKey ? { key: readFileSync(options.tlsKey) } : {}),
  };

  if (options.name) {
    // The gateway is --gateway-name's (or the active one), not -g: token mode uses --gateway for the URL.
    const named = new CliContext({ ...input.globals, gateway: gatewayName });
    const sandboxName = options.name;
    const target = named.target();
    const session = await named.withGateway(async (client) => {
      const sandbox = await getSandbox(client, sandboxName);
      return createSessionWhenReady(() => client.createSshSession({ sandboxId: sandbox.id }));
    }, target);
    await runSshProxy({
      url: new URL(connectUrl(session, target.endpoint)),
      sandboxId: session.sandboxId,
      token: session.token,
      tls: {
        ...(target.tls
          ? {
              ca: target.tls.ca,
              ...(target.tls.cert && target.tls.key ? { cert: target.tls.cert, key: target.tls.key } : {}),
            }
          : {}),
        ...tls,
      },
      stdin: process.stdin,
      stdout: process.stdout,
    });
    return 0;
  }
  // The root parses --gateway first (it is also -g's long flag), so the URL is in the globals.
  const url = input.globals.gateway ?? options.gateway;
  if (!url || !options.sandboxId || !options.token)
    throw new OpenShellError(
      "invalid_argument",
      "ssh-proxy needs --gateway, --sandbox-id and --token, or --name (with --gateway-name or the active gateway)",
    );
  await runSshProxy({
    url: new URL(url),
    sandboxId: options.sandboxId,
    token: options.token,
    tls,
    stdin: process.stdin,
    stdout: process.stdout,
  });
  return 0;
}

/** A sandbox that is still booting answers FAILED_PRECONDITION; retry like the 412 of CONNECT. */
async function createSessionWhenReady<T>(create: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + NOT_READY_RETRY_WINDOW_MS;
  const backoff = new Backoff(1_000, 8_000);
  for (;;) {
    try {
      return await create();
    } catch (error) {
      const delay = backoff.next();
      const notReady = error instanceof ConnectError && error.code === Code.FailedPrecondition;
      if (!notReady || Date.now() + delay > deadline) throw error;
      await sleep(delay);
    }
  }
}
