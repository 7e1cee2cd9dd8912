import {
  type BootstrapInputs,
  connectGateway,
  GatewayRegistry,
  type GatewayTarget,
  type OpenShellClient,
  type OpenShellPaths,
  openshellPaths,
  requireGatewayTarget,
  resolveGatewayTarget,
} from "@openshell/bootstrap";
import { OpenShellError } from "@openshell/core";
import type { GlobalOptions } from "./command-spec/global-options.js";
import { explainGatewayError } from "./gateway/gateway-errors.js";
import { Output } from "./ui/output.js";

/** What every command gets: where files live, the gateway registry, output, and gateway access. */
export class CliContext {
  readonly paths: OpenShellPaths;
  readonly registry: GatewayRegistry;
  readonly output: Output;
  readonly verbose: number;
  readonly json: boolean;

  constructor(
    /** -g, --gateway-endpoint, -o, -v. */
    readonly globals: GlobalOptions,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.paths = openshellPaths(env);
    this.registry = new GatewayRegistry(this.paths);
    const format = globals.output ?? "text";
    this.output = new Output({ format, env });
    this.json = format === "json";
    this.verbose = globals.verbose;
  }

  /** From a handler's input: the global options are all a context needs. */
  static of(input: { globals: GlobalOptions }): CliContext {
    return new CliContext(input.globals);
  }

  /** The narrow inputs gateway bootstrap takes: registry, environment, and this CLI's progress output. */
  bootstrapInputs(): BootstrapInputs {
    return { registry: this.registry, env: this.env, progress: this.output };
  }

  private get selection() {
    return { gateway: this.globals.gateway, gatewayEndpoint: this.globals.gatewayEndpoint };
  }

  /** The configured gateway, or undefined when none is (for bootstrap and a kind `status`). */
  optionalTarget(): GatewayTarget | undefined {
    return resolveGatewayTarget(this.registry, this.selection, this.env);
  }

  target(): GatewayTarget {
    return requireGatewayTarget(this.registry, this.selection, this.env);
  }

  /** Runs `work` with a client of the target gateway; transport errors become actionable messages. */
  async withGateway<T>(
    work: (client: OpenShellClient, target: GatewayTarget) => Promise<T>,
    target: GatewayTarget = this.target(),
  ): Promise<T> {
    const connection = connectGateway(target);
    try {
      return await work(connection.client, target);
    } catch (error) {
      throw explainGatewayError(error, target);
    } finally {
      connection.close();
    }
  }

  /** NAME, or the last sandbox used through this gateway (announced on stderr, as upstream). */
  sandboxName(name: string | undefined, target: GatewayTarget): string {
    if (name) return name;
    const last = target.name ? this.registry.lastSandbox(target.name) : undefined;
    if (!last)
      throw new OpenShellError(
        "invalid_argument",
        "no sandbox name given and no sandbox used before on this gateway; pass NAME (see: openshell sandbox list)",
      );
    this.output.note(`→ Using sandbox '${last}' (last used)`);
    return last;
  }

  rememberSandbox(target: GatewayTarget, name: string): void {
    if (target.name) this.registry.setLastSandbox(target.name, name);
  }

  /** The argv that runs this CLI again (for ProxyCommand lines): node + this bundle. */
  selfCommand(): string[] {
    const script = process.argv[1];
    return script ? [process.execPath, script] : [process.execPath];
  }
}
