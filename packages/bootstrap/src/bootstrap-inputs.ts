import type { GatewayRegistry } from "./gateway-registry.js";

/** One step in progress: its line can be rewritten, then closed. */
export interface ProgressStep {
  update(text: string): void;
  done(final?: string): void;
}

/** Where bootstrap reports what it does; the CLI's Output satisfies it, a test can record it. */
export interface BootstrapProgress {
  progress(text: string): ProgressStep;
  note(text: string): void;
  warn(text: string): void;
}

/** What starting, stopping or inspecting a gateway needs: nothing of the command line. */
export interface BootstrapInputs {
  registry: GatewayRegistry;
  env: NodeJS.ProcessEnv;
  progress: BootstrapProgress;
}
