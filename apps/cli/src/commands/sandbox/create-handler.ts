import { Code, ConnectError } from "@connectrpc/connect";
import type { OpenShellClient } from "@openshell/bootstrap";
import {
  DEFAULT_GATEWAY_NAME,
  ensureLocalGateway,
  type GatewayTarget,
  NO_ACTIVE_GATEWAY,
} from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import type { Sandbox } from "@openshell/proto";
import { CliContext } from "../../cli-context.js";
import type { CommandInput } from "../../command-spec/program-spec.js";
import { uploadToSandbox } from "../../files/sandbox-transfer.js";
import { shellCommandLine } from "../../files/shell-quote.js";
import { dockerGateway } from "../../gateway/load-docker-gateway.js";
import { readPolicyFile } from "../../policy/policy-file.js";
import { parseEnvAssignments, parseUploadSpec, resolveSandboxImage } from "../../sandbox/create-inputs.js";
import { deleteSandbox } from "../../sandbox/delete-sandbox.js";
import { wantsTty } from "../../sandbox/remote-command.js";
import { parseSandboxResources } from "../../sandbox/sandbox-resources.js";
import { sandboxJson } from "../../sandbox/sandbox-view.js";
import { provisionTimeoutMs, waitForReady } from "../../sandbox/wait-for-ready.js";
import {
  runSshAttached,
  sessionProxyCommand,
  sshArgs,
  sshRemoteRunner,
  ttyArgs,
} from "../../ssh/sandbox-ssh.js";
import type { sandboxCreateCommand } from "./create.js";

export async function run(input: CommandInput<typeof sandboxCreateCommand>): Promise<number> {
  const ctx = CliContext.of(input);
  const options = input.options;
  const name = options.name;
  if (name !== undefined && name.trim() === "")
    throw new OpenShellError(
      "invalid_argument",
      "--name must not be empty: give a name, or leave --name out to get a generated one",
    );
  const environment = parseEnvAssignments(options.env);
  const resources = parseSandboxResources({
    cpus: options.cpus,
    memory: options.memory,
    disk: options.disk,
  });
  // Checked here, before any gateway is started or anything created: a bad file is exit 2 (FILE:LINE).
  const policyFile = options.policy ?? ctx.env.OPENSHELL_SANDBOX_POLICY;
  const local = policyFile ? readPolicyFile(policyFile) : undefined;
  for (const warning of local?.warnings ?? []) ctx.output.warn(warning);
  const policy = local?.policy;
  const upload = options.upload ? parseUploadSpec(options.upload) : undefined;
  const image = options.from !== undefined ? resolveSandboxImage(options.from, ctx.env) : undefined;
  const timeoutMs = provisionTimeoutMs(ctx.env);
  const command = input.trailing;
  const keep = options.keep;
  const bootstrap = options.bootstrap;

  let target = ctx.optionalTarget();
  if (!target) {
    if (!bootstrap) throw new OpenShellError("unavailable", NO_ACTIVE_GATEWAY);
    ctx.output.info("No gateway found — starting one automatically.");
    target = (
      await ensureLocalGateway(ctx.bootstrapInputs(), {
        name: ctx.env.OPENSHELL_GATEWAY ?? DEFAULT_GATEWAY_NAME,
      })
    ).target;
  }

  const request = {
    name: name ?? "",
    spec: {
      environment,
      ...(policy ? { policy } : {}),
      ...(resources || image
        ? { template: { ...(resources ? { resources } : {}), ...(image ? { image } : {}) } }
        : {}),
    },
  };
  const created = await createWithBootstrap(ctx, target, bootstrap, (client) =>
    client.createSandbox(request),
  );
  target = created.target;
  const sandbox = created.sandbox;
  ctx.output.note(`Created sandbox: ${sandbox.name}`);
  ctx.rememberSandbox(target, sandbox.name);

  let exitCode = 0;
  try {
    await ctx.withGateway(async (client) => {
      const ready = await waitForReady({
        client,
        sandbox,
        output: ctx.output,
        timeoutMs,
        verbose: ctx.verbose > 0,
      });
      if (upload) {
        const proxy = await sessionProxyCommand(ctx, client, target, ready);
        const summary = await uploadToSandbox({
          localPath: upload.local,
          dest: upload.dest,
          gitIgnore: options.gitIgnore,
          runRemote: sshRemoteRunner(proxy),
        });
        ctx.output.success(`Uploaded ${summary.files} files (${summary.bytes} bytes) to ${upload.dest}`);
      }
      const interactive = command.length === 0 && Boolean(process.stdin.isTTY && process.stdout.isTTY);
      if (command.length > 0 || interactive) {
        const proxy = await sessionProxyCommand(ctx, client, target, ready);
        const tty = command.length > 0 ? wantsTty(options.tty) : true;
        const remote = command.length > 0 ? shellCommandLine(command) : undefined;
        exitCode = await runSshAttached(sshArgs(proxy, ttyArgs(tty), remote));
      } else if (ctx.json) ctx.output.json(sandboxJson(ready));
      else ctx.output.print(ready.name);
    }, target);
  } finally {
    if (!keep) {
      await ctx.withGateway(async (client) => {
        const progress = ctx.output.progress(`Deleting sandbox '${sandbox.name}' (--no-keep)`);
        await deleteSandbox(client, sandbox.name, { wait: true });
        progress.done();
        ctx.output.success(`Deleted sandbox '${sandbox.name}'`);
      }, target);
      if (target.name) ctx.registry.clearLastSandbox(target.name, sandbox.name);
    }
  }
  return exitCode;
}

/**
 * CreateSandbox; when a gateway this CLI manages is down, start it and retry once (upstream's
 * auto-bootstrap).
 */
async function createWithBootstrap(
  ctx: CliContext,
  target: GatewayTarget,
  bootstrap: boolean,
  create: (client: OpenShellClient) => Promise<{ sandbox?: Sandbox }>,
): Promise<{ target: GatewayTarget; sandbox: Sandbox }> {
  const attempt = async (using: GatewayTarget) => {
    const response = await ctx.withGateway(create, using);
    if (!response.sandbox)
      throw new OpenShellError("internal", "the gateway answered CreateSandbox without a sandbox");
    return { target: using, sandbox: response.sandbox };
  };
  try {
    return await attempt(target);
  } catch (error) {
    const unreachable =
      error instanceof OpenShellError &&
      error.code === "unavailable" &&
      error.cause instanceof ConnectError &&
      error.cause.code === Code.Unavailable;
    const deployment = target.metadata?.deployment;
    if (!unreachable || !bootstrap || !target.name || (deployment !== "process" && deployment !== "docker"))
      throw error;
    ctx.output.info(`Gateway '${target.name}' is not running — starting it.`);
    return attempt(await startManagedGateway(ctx, target.name, deployment));
  }
}

/** A process gateway is resumed; a Docker one is resumed, or recreated with a warning if that fails. */
async function startManagedGateway(
  ctx: CliContext,
  name: string,
  deployment: "process" | "docker",
): Promise<GatewayTarget> {
  if (deployment === "process") return (await ensureLocalGateway(ctx.bootstrapInputs(), { name })).target;
  const { ensureDockerGateway } = await dockerGateway();
  try {
    return (await ensureDockerGateway(ctx.bootstrapInputs(), { name })).target;
  } catch (resumeError) {
    ctx.output.warn(
      `Resuming gateway '${name}' failed (${(resumeError as Error).message.split("\n")[0]}); recreating it from scratch`,
    );
    return (await ensureDockerGateway(ctx.bootstrapInputs(), { name, recreate: true })).target;
  }
}
