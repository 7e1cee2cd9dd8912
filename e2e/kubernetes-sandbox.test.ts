import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateGatewayPki, writeGatewayPki } from "@openshell/bootstrap";
import {
  CLI,
  CliSandboxUser,
  checkSshConfig,
  checkStopStartKeepsWorkspace,
  checkUploadDownload,
  REPO,
} from "@openshell/testing/cli-harness";
import { type DockerDaemon, startDockerDaemon } from "@openshell/testing/docker-harness";
import type { KubeObject } from "@openshell/testing/fake-kubernetes/api-server";
import { type FakeCluster, startFakeCluster } from "@openshell/testing/fake-kubernetes/cluster";
import type { FakeNodeAgent } from "@openshell/testing/fake-kubernetes/node-agent";
import {
  importDebianSandboxImage,
  importSupervisorImage,
} from "@openshell/testing/fake-kubernetes/sandbox-images";
import {
  makeStateDir,
  type RunningGateway,
  removeStateDir,
  startGateway,
} from "@openshell/testing/gateway-harness";
import { freePort, isAlive, waitFor } from "@openshell/testing/process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

/**
 * The issue's "done when" through the `openshell` CLI against the FAKE Kubernetes cluster (fake API
 * server, fake agent-sandbox controller, fake node agent running pods on a private dockerd): a real
 * gateway with `--drivers kubernetes`, the real driver, the real supervisor copied into each pod by
 * the init container the driver generates, real OpenSSH, mTLS as the deployment's overlay has it
 * (the CLI added with `gateway add --ca-cert --client-cert --client-key`, the supervisors with the
 * client certificate from the Secret their pods mount). One sandbox walks through create, exec,
 * SSH, upload/download, stop/start, a gateway restart (adoption) and delete.
 */
const NS = "openshell";
const SUPERVISOR_IMAGE = "openshell-test/k8s-supervisor:e2e";
const DRIVER_DIR = join(REPO, "packages", "driver-kubernetes", "dist");
const SANDBOX = "kube";
/** The namespace of the local gateway that `gateway start --drivers kubernetes` starts. */
const LOCAL_NS = "openshell-local";
const LOCAL_GATEWAY = "kube-local";
const CLIENT_TLS_SECRET = "openshell-client-tls";
/** Pod start on a loaded 2-core machine: image, init containers, the supervisor's Node start-up. */
const READY_TIMEOUT_S = "240";

let daemon: DockerDaemon | undefined;
let cluster: FakeCluster | undefined;
let nodeDir: string;
let stateDir: string;
let sandboxImage: string;
let user: CliSandboxUser;
let gateway: RunningGateway | undefined;
let gatewayPort = 0;
let hostIp = "";
/** The gateway's PKI, as scripts/kube-create-pki.sh makes it in a cluster (here in a temp dir). */
let pkiDir: string;
const pkiFile = (name: string) => join(pkiDir, name);

async function startKubernetesGateway(): Promise<RunningGateway> {
  const fake = cluster as FakeCluster;
  const kubeconfig = join(stateDir, "kubeconfig");
  writeFileSync(kubeconfig, fake.kubeconfig);
  return startGateway({
    stateDir,
    bindAddress: hostIp,
    port: gatewayPort,
    driver: { name: "kubernetes", dir: DRIVER_DIR },
    // mTLS as deployed (overlays/mtls): the CLI and every supervisor present a client certificate.
    tls: {
      cert: pkiFile("server.crt"),
      key: pkiFile("server.key"),
      clientCa: pkiFile("ca.crt"),
      client: { ca: pkiFile("ca.crt"), cert: pkiFile("client.crt"), key: pkiFile("client.key") },
    },
    extraArgs: [
      "--sandbox-namespace",
      NS,
      "--sandbox-image",
      sandboxImage,
      "--sandbox-image-pull-policy",
      "IfNotPresent",
      // Where pods reach the gateway: the pod network's gateway address, as the node agent names it.
      "--grpc-endpoint",
      `https://host.openshell.internal:${gatewayPort}`,
      // The supervisors' client certificate: a Secret the pods mount (what kube-create-pki.sh makes).
      "--client-tls-secret-name",
      CLIENT_TLS_SECRET,
    ],
    env: { OPENSHELL_KUBECONFIG: kubeconfig, OPENSHELL_SUPERVISOR_IMAGE: SUPERVISOR_IMAGE },
    startTimeoutMs: 60_000,
  });
}

function resource(plural: string, name: string): KubeObject | undefined {
  const api = (cluster as FakeCluster).api;
  return api.get(api.type(plural), NS, name);
}

beforeAll(async () => {
  daemon = await startDockerDaemon({
    runDir: "/run/openshell-k8s-docker",
    dataRoot: "/var/lib/openshell-k8s-docker",
    addressPool: "base=10.214.0.0/16,size=24",
  });
  sandboxImage = await importDebianSandboxImage(daemon);
  await importSupervisorImage(daemon, SUPERVISOR_IMAGE);
  nodeDir = mkdtempSync(join(tmpdir(), "osk8s-node-"));
  cluster = await startFakeCluster({
    namespace: NS,
    namespaces: [NS, LOCAL_NS],
    docker: daemon,
    stateDir: nodeDir,
    backoffMs: 1000,
  });
  hostIp = (cluster.agent as FakeNodeAgent).hostGatewayIp;
  // The server certificate names host.openshell.internal (pods) and the bridge address (the CLI).
  pkiDir = mkdtempSync(join(tmpdir(), "osk8s-pki-"));
  writeGatewayPki(pkiDir, await generateGatewayPki({ gatewayName: "kube-fake", extraSans: [hostIp] }));
  const base64 = (name: string) => readFileSync(pkiFile(name)).toString("base64");
  cluster.api.create(cluster.api.type("secrets"), {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: CLIENT_TLS_SECRET, namespace: NS },
    type: "Opaque",
    data: { "ca.crt": base64("ca.crt"), "tls.crt": base64("client.crt"), "tls.key": base64("client.key") },
  } as KubeObject);
  stateDir = makeStateDir();
  gatewayPort = await freePort();
  gateway = await startKubernetesGateway();
  user = new CliSandboxUser({ OPENSHELL_PROVISION_TIMEOUT: READY_TIMEOUT_S });
  const added = await user.run([
    "gateway",
    "add",
    gateway.url,
    "--name",
    "kube-fake",
    "--ca-cert",
    pkiFile("ca.crt"),
    "--client-cert",
    pkiFile("client.crt"),
    "--client-key",
    pkiFile("client.key"),
  ]);
  if (added.code !== 0) throw new Error(`gateway add failed: ${added.stderr}`);
}, 600_000);

afterEach(async (context) => {
  if (context.task.result?.state !== "fail") return;
  process.stderr.write(`gateway log:\n${gateway?.output().slice(-8000)}\n`);
  // The newest agent containers' output: the supervisor's log (the pod's `kubectl logs`).
  const agents = await daemon?.docker(["ps", "-aq", "--filter", "name=k8s_agent_"], { allowFailure: true });
  for (const id of (agents?.stdout ?? "").split("\n").filter(Boolean).slice(0, 2)) {
    const logs = await daemon?.docker(["logs", id], { allowFailure: true });
    process.stderr.write(`agent container ${id}:\n${`${logs?.stdout}${logs?.stderr}`.slice(-4000)}\n`);
  }
});

afterAll(async () => {
  if (gateway && isAlive(gateway.pid)) await gateway.stop("SIGKILL");
  const local = user?.gatewayPid(LOCAL_GATEWAY);
  if (local) process.kill(local, "SIGKILL");
  if (stateDir) removeStateDir(stateDir);
  user?.cleanUp();
  await cluster?.stop();
  await daemon?.stop();
  if (nodeDir) rmSync(nodeDir, { recursive: true, force: true });
  if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
}, 180_000);

describe("sandboxes on Kubernetes through the CLI (FAKE cluster, real gateway, driver, supervisor, OpenSSH)", () => {
  it("create shows the pod's platform events and runs the command", async () => {
    const created = await user.run(["sandbox", "create", "--name", SANDBOX, "--", "echo", "hello-from-pod"], {
      timeoutMs: 300_000,
    });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain(`Created sandbox: ${SANDBOX}`);
    for (const step of ["Scheduled", "Started"]) expect(created.stderr).toContain(step);
    expect(created.stdout).toContain("hello-from-pod");
    const sandbox = resource("sandboxes", SANDBOX);
    expect(sandbox?.metadata?.labels?.["openshell.ai/managed-by"]).toBe("openshell");
  }, 320_000);

  it("exec runs as the sandbox user in /sandbox", async () => {
    const exec = await user.run([
      "sandbox",
      "exec",
      SANDBOX,
      "--",
      "bash",
      "-c",
      "id -un; pwd; echo $((6*7))",
    ]);
    expect(exec, exec.stderr).toMatchObject({ code: 0, stdout: "sandbox\n/sandbox\n42\n" });
  });

  it("commands in the pod reach neither the host nor the gateway directly (the sandbox network namespace, set up with the bundled ip and nft)", async () => {
    // A listener on the pod network's gateway address: reachable from the pod's own network
    // namespace (the supervisor dials the gateway there), not from the sandbox's.
    let accepted = 0;
    const server = createServer((socket) => {
      accepted++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, hostIp, resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const connect = (host: string, to: number) =>
        `timeout 10 bash -c 'exec 3<>/dev/tcp/${host}/${to}' 2>&1; echo "rc=$?"`;
      const probe = await user.run([
        "sandbox",
        "exec",
        SANDBOX,
        "--",
        "bash",
        "-c",
        [connect(hostIp, port), connect("host.openshell.internal", port), connect(hostIp, gatewayPort)].join(
          "; ",
        ),
      ]);
      expect(probe.stdout.match(/rc=\d+/g), probe.stdout).toEqual(["rc=1", "rc=1", "rc=1"]);
      expect(accepted).toBe(0);
    } finally {
      server.close();
    }
  });

  it("connect gives an interactive terminal (the bundled node-pty in the pod; driven through script(1))", async () => {
    const shell = spawnSync(
      "script",
      ["-qec", `${process.execPath} ${CLI} sandbox connect ${SANDBOX}`, "/dev/null"],
      {
        env: user.env,
        input: "echo connected-$((6*7)); tty\nexit 3\n",
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    expect(shell.status, shell.stderr).toBe(3);
    expect(shell.stdout).toContain("connected-42");
    expect(shell.stdout).toMatch(/\/dev\/pts\/\d+/);
  });

  it("OpenSSH through `openshell ssh-proxy` (ssh-config)", async () => {
    await checkSshConfig(user, SANDBOX);
  });

  it("upload and download bring the same bytes back", async () => {
    await checkUploadDownload(user, SANDBOX);
  });

  it("stop scales the pod away and start brings it back with /sandbox intact", async () => {
    const { started } = await checkStopStartKeepsWorkspace(user, SANDBOX, {
      stopTimeoutMs: 180_000,
      startTimeoutMs: 300_000,
      whileStopped: () => expect(resource("pods", SANDBOX)).toBeUndefined(),
    });
    expect(started.stderr).toContain(`Sandbox '${SANDBOX}' is ready`);
  }, 320_000);

  it("a gateway killed and started again on its state adopts the running sandbox", async () => {
    const old = gateway as RunningGateway;
    await old.stop("SIGKILL");
    expect(isAlive(old.pid)).toBe(false);
    // The pod keeps running without the gateway, and is the same pod after (adopted, not recreated).
    const podUid = resource("pods", SANDBOX)?.metadata?.uid;
    expect(podUid).toBeDefined();
    gateway = await startKubernetesGateway();
    await waitFor(
      async () => {
        const got = await user.run(["sandbox", "get", SANDBOX, "-o", "json"]);
        return got.code === 0 && JSON.parse(got.stdout).phase === "SANDBOX_PHASE_READY";
      },
      180_000,
      "the sandbox is not READY again after the gateway restart",
    );
    const read = await user.run(["sandbox", "exec", SANDBOX, "--", "cat", "/sandbox/kept.txt"]);
    expect(read).toMatchObject({ code: 0, stdout: "survived\n" });
    expect(resource("pods", SANDBOX)?.metadata?.uid).toBe(podUid);
  }, 240_000);

  it("delete removes the Sandbox resource, its Secret and its workspace claim", async () => {
    const deleted = await user.run(["sandbox", "delete", SANDBOX], { timeoutMs: 180_000 });
    expect(deleted.code, deleted.stderr).toBe(0);
    await waitFor(() => resource("sandboxes", SANDBOX) === undefined, 60_000, "Sandbox resource left");
    await waitFor(() => resource("secrets", `${SANDBOX}-supervisor`) === undefined, 60_000, "Secret left");
    await waitFor(
      () => resource("persistentvolumeclaims", `workspace-${SANDBOX}`) === undefined,
      60_000,
      "workspace PVC left",
    );
    const listed = await user.run(["sandbox", "list", "--names"]);
    expect(listed.stdout.split("\n")).not.toContain(SANDBOX);
  }, 240_000);
  it("an image that cannot be pulled: create (--from) shows why the pod waits and times out saying so", async () => {
    const created = await user.run(
      ["sandbox", "create", "--name", "nopull", "--from", "example.invalid/missing:1", "--", "true"],
      { env: { OPENSHELL_PROVISION_TIMEOUT: "20" }, timeoutMs: 120_000 },
    );
    expect(created.code, created.stderr).toBe(5);
    expect(created.stderr).toContain("sandbox 'nopull' was not ready after 20 s");
    expect(created.stderr).toMatch(/ErrImagePull|ImagePullBackOff|Back-off pulling image/);
    const pod = resource("pods", "nopull") as KubeObject & { spec: { containers: { image: string }[] } };
    expect(pod.spec.containers[0]?.image).toBe("example.invalid/missing:1");
    const deleted = await user.run(["sandbox", "delete", "nopull"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    await waitFor(() => resource("sandboxes", "nopull") === undefined, 60_000, "Sandbox resource left");
  }, 180_000);

  it("`gateway start --drivers kubernetes` finds the driver by package resolution and starts it against the cluster", async () => {
    // The driver's settings come from the environment the CLI hands the gateway; plaintext, so the
    // supervisor endpoint is http:// (an https:// one needs the client TLS Secret).
    const env = {
      OPENSHELL_KUBECONFIG: join(stateDir, "kubeconfig"),
      OPENSHELL_SANDBOX_NAMESPACE: LOCAL_NS,
      OPENSHELL_SANDBOX_IMAGE: sandboxImage,
      OPENSHELL_SUPERVISOR_IMAGE: SUPERVISOR_IMAGE,
      OPENSHELL_GATEWAY_PORT: String(await freePort()),
    };
    const started = await user.run(
      ["gateway", "start", "--name", LOCAL_GATEWAY, "--drivers", "kubernetes", "--plaintext"],
      { env, timeoutMs: 120_000 },
    );
    expect(started.code, started.stderr).toBe(0);
    const status = JSON.parse((await user.run(["status", "-o", "json"])).stdout);
    expect(status).toMatchObject({
      gateway: LOCAL_GATEWAY,
      status: "Connected (HTTP)",
      driver: "kubernetes",
    });
    expect(readFileSync(join(user.gatewayStateDir(LOCAL_GATEWAY), "logs", "gateway.log"), "utf8")).toContain(
      "using the agents.x-k8s.io Sandbox API",
    );
    const stopped = await user.run(["gateway", "stop", "--name", LOCAL_GATEWAY]);
    expect(stopped.code, stopped.stderr).toBe(0);
  }, 180_000);
});
