/**
 * A FAKE Kubernetes cluster for tests (no real one can be had on these machines): the fake API
 * server, the fake agent-sandbox controller and, given a private Docker daemon, the fake node agent,
 * started together and stopped in reverse order.
 */
import type { DockerDaemon } from "../docker-harness.js";
import { type FakeApiServerOptions, FakeKubernetesApiServer } from "./fake-api-server.js";
import { FakeSandboxController } from "./fake-sandbox-controller.js";
import { FakeNodeAgent } from "./node-agent.js";

export interface FakeCluster {
  api: FakeKubernetesApiServer;
  controller: FakeSandboxController;
  /** Absent when no Docker daemon was given: pods then stay Pending, as on a cluster with no node. */
  agent: FakeNodeAgent | undefined;
  /** A kubeconfig for `namespace` (JSON, which is YAML). */
  kubeconfig: string;
  stop(): Promise<void>;
}

export interface FakeClusterOptions extends FakeApiServerOptions {
  /** The namespace the kubeconfig's context names (created; default "openshell"). */
  namespace?: string;
  /** Runs pods on this daemon; without it there is no node. */
  docker?: Pick<DockerDaemon, "host">;
  /** Host directory for the node agent's secret volumes (needed with `docker`). */
  stateDir?: string;
  backoffMs?: number;
}

export async function startFakeCluster(options: FakeClusterOptions = {}): Promise<FakeCluster> {
  const namespace = options.namespace ?? "openshell";
  const namespaces = [...new Set([...(options.namespaces ?? ["default"]), namespace])];
  const api = new FakeKubernetesApiServer({ ...options, namespaces });
  await api.start();
  const controller = new FakeSandboxController(api);
  controller.start();
  let agent: FakeNodeAgent | undefined;
  try {
    if (options.docker) {
      if (!options.stateDir) throw new Error("startFakeCluster: a node agent needs stateDir");
      agent = new FakeNodeAgent(api, {
        dockerHost: options.docker.host,
        stateDir: options.stateDir,
        ...(options.backoffMs !== undefined ? { backoffMs: options.backoffMs } : {}),
      });
      await agent.start();
    }
  } catch (error) {
    controller.stop();
    await api.close();
    throw error;
  }
  return {
    api,
    controller,
    agent,
    kubeconfig: api.kubeconfig({ namespace }),
    async stop() {
      await agent?.stop();
      controller.stop();
      await api.close();
    },
  };
}
