import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { REPO } from "@openshell/testing/cli-harness";
import { FakeKubernetesApiServer } from "@openshell/testing/fake-kubernetes/api-server";
import { GATEWAY_BIN } from "@openshell/testing/gateway-harness";
import { freePort, stopChild, waitFor } from "@openshell/testing/process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { containerEnv, gatewayContainer, KUBECTL, kubectlUnavailable, renderKustomize } from "./kustomize.js";

/**
 * The gateway started exactly as the rendered StatefulSet starts it (its args and env; the
 * container paths under a temporary root, the ports free ones on 127.0.0.1), with the built
 * Kubernetes driver talking to the FAKE Kubernetes API server (no cluster can be had here) and, for
 * the mTLS overlay, the Secrets' files as scripts/kube-create-pki.sh makes them: the probes' port
 * answers /healthz and /readyz in plain HTTP, the API port demands the client certificate.
 */
const DEPLOY = join(REPO, "deploy", "kubernetes");
const DRIVER_DIR = join(REPO, "packages", "driver-kubernetes", "dist");
const kubectlMissing = kubectlUnavailable();
if (kubectlMissing)
  console.warn(`kubernetes-manifest-gateway: SKIPPED, '${KUBECTL}' cannot run (${kubectlMissing})`);

/** Where each Secret of the overlay is mounted, and which PKI file goes to which key. */
const SECRET_FILES: Record<string, Record<string, string>> = {
  "/etc/openshell-tls/server": { "tls.crt": "server.crt", "tls.key": "server.key" },
  "/etc/openshell-tls/client-ca": { "ca.crt": "ca.crt" },
  "/etc/openshell-tls/client": { "tls.crt": "client.crt", "tls.key": "client.key", "ca.crt": "ca.crt" },
};
const CONTAINER_DIRS = ["/var/lib/openshell", "/run/openshell", "/etc/openshell-tls", "/tmp"];
const CONTAINER_PATH = new RegExp(`(^|[=:])(${CONTAINER_DIRS.join("|")})(?=/|$)`, "g");

function get(
  url: string,
  tls?: { ca: string; cert?: string; key?: string },
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const options = { timeout: 5000, ...(tls ? { ...tls, servername: "localhost" } : {}) };
    const request = (url.startsWith("https:") ? https : http).get(url, options, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
  });
}

describe.skipIf(kubectlMissing !== undefined)("the gateway as deploy/kubernetes starts it", () => {
  let api: FakeKubernetesApiServer;
  let root = "";
  let gateway: ChildProcess | undefined;
  let output = "";
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "openshell-k8s-manifest-"));
    api = new FakeKubernetesApiServer({ namespaces: ["openshell"] });
    await api.start();
  });
  afterEach(async (context) => {
    if (gateway) await stopChild(gateway, "SIGKILL");
    gateway = undefined;
    if (context.task.result?.state === "fail") console.log(`gateway output:\n${output}`);
  });
  afterAll(async () => {
    await api?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Starts the gateway with the rendered container's args and env under `dir`; returns its ports. */
  async function startAsRendered(overlay: string, dir: string) {
    const container = gatewayContainer(renderKustomize(join(DEPLOY, overlay)));
    const [port, healthPort] = [await freePort(), await freePort()];
    // Every container path (after `=`, `:` or at the start, e.g. `--db-url=sqlite:/var/lib/...`)
    // moves under `dir`; a path left over would be this machine's own /var/lib/openshell.
    const local = (value: string) =>
      value.replace(CONTAINER_PATH, (_, before, path) => `${before}${dir}${path}`);
    for (const path of CONTAINER_DIRS) mkdirSync(join(dir, path), { recursive: true });
    const args = (container.args as string[]).map((arg) =>
      local(
        arg === "--port=8080"
          ? `--port=${port}`
          : arg === "--health-port=8081"
            ? `--health-port=${healthPort}`
            : arg === "--bind-address=0.0.0.0"
              ? "--bind-address=127.0.0.1"
              : arg,
      ),
    );
    const env = Object.fromEntries(Object.entries(containerEnv(container)).map(([k, v]) => [k, local(v)]));
    for (const value of [...args, ...Object.values(env)]) {
      expect(value.replaceAll(dir, "<dir>")).not.toMatch(new RegExp(CONTAINER_PATH.source));
    }
    expect(args.filter((arg) => arg.startsWith("--port=") || arg.startsWith("--health-port="))).toEqual([
      `--port=${port}`,
      `--health-port=${healthPort}`,
    ]);
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, api.kubeconfig());
    output = "";
    gateway = spawn(process.execPath, [GATEWAY_BIN, ...args], {
      env: {
        PATH: process.env.PATH,
        ...env,
        OPENSHELL_KUBECONFIG: kubeconfig,
        OPENSHELL_DRIVER_DIR: DRIVER_DIR,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    gateway.stdout?.on("data", (chunk) => {
      output += chunk;
    });
    gateway.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    const child = gateway;
    await waitFor(
      async () => {
        const ready = await get(`http://127.0.0.1:${healthPort}/readyz`);
        return "status" in ready && ready.status === 200;
      },
      30_000,
      () => `the gateway's /readyz never answered 200:\n${output}`,
      child,
    );
    return { port, healthPort, env };
  }

  it("base: plaintext API, probes on the health port, the driver reaches the API server", async () => {
    const { port, healthPort, env } = await startAsRendered("base", join(root, "base"));
    expect(await get(`http://127.0.0.1:${healthPort}/healthz`)).toMatchObject({ status: 200 });
    expect(await get(`http://127.0.0.1:${port}/readyz`)).toMatchObject({ status: 200 });
    expect(env.OPENSHELL_GRPC_ENDPOINT).toMatch(/^http:/);
    const paths = api.requests.map((r) => r.path);
    expect(paths).toContain("/apis");
    expect(
      paths.some((p) => p.startsWith("/apis/agents.x-k8s.io/v1alpha1/namespaces/openshell/sandboxes")),
    ).toBe(true);
  });

  it("overlays/mtls: the API port takes only the client certificate of the PKI Secrets", async () => {
    const dir = join(root, "mtls");
    const pki = join(root, "pki");
    const generated = spawnSync(
      "bash",
      [join(REPO, "scripts", "kube-create-pki.sh"), "--generate-only", "--pki-dir", pki],
      {
        encoding: "utf8",
      },
    );
    expect(generated.status, generated.stderr).toBe(0);
    for (const [mount, files] of Object.entries(SECRET_FILES)) {
      for (const [key, file] of Object.entries(files)) {
        const target = join(dir, mount, key);
        mkdirSync(dirname(target), { recursive: true });
        copyFileSync(join(pki, file), target);
      }
    }
    const { port, healthPort, env } = await startAsRendered("overlays/mtls", dir);
    expect(env.OPENSHELL_GRPC_ENDPOINT).toMatch(/^https:/);
    // The kubelet's probes: plain HTTP, no certificate.
    expect(await get(`http://127.0.0.1:${healthPort}/healthz`)).toMatchObject({ status: 200 });
    const read = (file: string) => readFileSync(join(pki, file), "utf8");
    const ca = read("ca.crt");
    expect(
      await get(`https://127.0.0.1:${port}/readyz`, {
        ca,
        cert: read("client.crt"),
        key: read("client.key"),
      }),
    ).toMatchObject({ status: 200 });
    expect(await get(`https://127.0.0.1:${port}/readyz`, { ca })).toHaveProperty("error");
    expect(await get(`http://127.0.0.1:${port}/readyz`)).not.toMatchObject({ status: 200 });
  });
});
