import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { REPO } from "@openshell/testing/cli-harness";
import { FakeKubernetesApiServer } from "@openshell/testing/fake-kubernetes/api-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * scripts/kube-create-pki.sh: the in-cluster gateway's PKI Secrets are created once and reused on
 * every later run (restart, upgrade, re-apply), never replaced. The certificates are checked with a
 * real mTLS handshake (Node's TLS, the gateway's stack); the Secrets flow runs the real kubectl
 * against the FAKE Kubernetes API server of @openshell/testing (no cluster can be had here).
 */
const SCRIPT = join(REPO, "scripts", "kube-create-pki.sh");
const KUBECTL = process.env.KUBECTL || "kubectl";
const kubectlMissing = spawnSync(KUBECTL, ["version", "--client"]).status !== 0;
const SECRETS = ["openshell-server-tls", "openshell-server-client-ca", "openshell-client-tls"];

let scratch = "";
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "openshell-kube-pki-"));
});
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Runs the script without blocking: the fake API server answers kubectl from this process. */
async function runScript(args: string[]): Promise<{ status: number | null; stderr: string }> {
  const child = spawn("bash", [SCRIPT, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const [status] = (await once(child, "close")) as [number | null];
  return { status, stderr };
}

/** Serves TLS with `server`, demanding a client certificate from `clientCa`; resolves what the client saw. */
async function handshake(
  server: { cert: string; key: string; clientCa: string },
  client: { ca: string; cert?: string; key?: string; servername: string },
): Promise<"ok" | string> {
  const listener = tls.createServer(
    { cert: server.cert, key: server.key, ca: server.clientCa, requestCert: true, rejectUnauthorized: true },
    (socket) => socket.end("hello"),
  );
  listener.on("tlsClientError", () => {});
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const { port } = listener.address() as { port: number };
  try {
    return await new Promise((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port, ...client });
      let data = "";
      socket.on("data", (chunk) => {
        data += chunk;
      });
      socket.on("end", () => resolve(data === "hello" ? "ok" : `closed after '${data}'`));
      socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
  } finally {
    listener.close();
  }
}

describe("kube-create-pki.sh: the certificates", () => {
  it("make an mTLS pair the in-cluster names verify against; a stranger's client certificate is refused", async () => {
    const dir = join(scratch, "pki");
    const result = await runScript(["--generate-only", "--pki-dir", dir, "--san", "gateway.example.com"]);
    expect(result.status, result.stderr).toBe(0);
    const read = (file: string) => readFileSync(join(dir, file), "utf8");
    const server = { cert: read("server.crt"), key: read("server.key"), clientCa: read("ca.crt") };
    const client = { ca: read("ca.crt"), cert: read("client.crt"), key: read("client.key") };
    for (const servername of ["openshell.openshell.svc.cluster.local", "localhost", "gateway.example.com"]) {
      expect(await handshake(server, { ...client, servername })).toBe("ok");
    }
    expect(await handshake(server, { ...client, servername: "elsewhere.example.com" })).toBe(
      "ERR_TLS_CERT_ALTNAME_INVALID",
    );

    // A second run reuses the directory; another directory is another CA, refused by this gateway.
    expect((await runScript(["--generate-only", "--pki-dir", dir])).stderr).toContain("using the PKI in");
    expect(read("server.crt")).toBe(server.cert);
    const other = join(scratch, "other");
    expect((await runScript(["--generate-only", "--pki-dir", other])).status).toBe(0);
    const stranger = {
      ca: read("ca.crt"),
      cert: readFileSync(join(other, "client.crt"), "utf8"),
      key: readFileSync(join(other, "client.key"), "utf8"),
    };
    expect(await handshake(server, { ...stranger, servername: "localhost" })).not.toBe("ok");
  });
});

describe.skipIf(kubectlMissing)("kube-create-pki.sh: the Secrets, against the fake API server", () => {
  let api: FakeKubernetesApiServer;
  let kubeconfig = "";
  beforeAll(async () => {
    api = new FakeKubernetesApiServer({ namespaces: ["default"] });
    await api.start();
    kubeconfig = join(scratch, "kubeconfig");
    writeFileSync(kubeconfig, api.kubeconfig());
  });
  afterAll(async () => api?.close());

  const secret = (name: string) => api.get(api.type("secrets"), "openshell", name);

  it("creates the three Secrets once, reuses them on every later run, refuses a partial set", async () => {
    const out = join(scratch, "bundle");
    const first = await runScript(["--kubeconfig", kubeconfig, "--out", out]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain(
      "created openshell-server-tls openshell-server-client-ca openshell-client-tls",
    );
    expect(api.get(api.type("namespaces"), undefined, "openshell")).toBeDefined();
    const created = SECRETS.map((name) => secret(name));
    expect(created.map((s) => Object.keys(s?.data ?? {}).sort())).toEqual([
      ["tls.crt", "tls.key"],
      ["ca.crt"],
      ["ca.crt", "tls.crt", "tls.key"],
    ]);
    expect(created[0]?.type).toBe("kubernetes.io/tls");
    const data = (name: string, key: string) =>
      Buffer.from(
        (secret(name)?.data as Record<string, string> | undefined)?.[key] ?? "",
        "base64",
      ).toString();
    expect(data("openshell-client-tls", "ca.crt")).toBe(data("openshell-server-client-ca", "ca.crt"));
    // The client bundle for `openshell gateway add`.
    expect(readFileSync(join(out, "tls.crt"), "utf8")).toBe(data("openshell-client-tls", "tls.crt"));
    expect(readFileSync(join(out, "ca.crt"), "utf8")).toBe(data("openshell-client-tls", "ca.crt"));

    // Restart, upgrade, re-apply: the same Secrets, untouched.
    const second = await runScript(["--kubeconfig", kubeconfig]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toContain("reusing the existing TLS Secrets");
    expect(SECRETS.map((name) => secret(name))).toEqual(created);

    // One lost: nothing is replaced, the message says how to recover.
    const serverTls = secret("openshell-server-tls");
    if (serverTls) api.remove(api.type("secrets"), serverTls, "Background");
    const partial = await runScript(["--kubeconfig", kubeconfig]);
    expect(partial.status).not.toBe(0);
    expect(partial.stderr).toContain("only some of the PKI Secrets exist");
    expect(secret("openshell-server-tls")).toBeUndefined();
    expect(secret("openshell-client-tls")).toEqual(created[2]);
  });

  it("fails naming the cause when the API refuses", async () => {
    api.forbid("get", "secrets");
    try {
      const result = await runScript(["--kubeconfig", kubeconfig, "--namespace", "default"]);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/cannot read Secret default\/openshell-server-tls: .*[Ff]orbidden/);
    } finally {
      api.allow("get", "secrets");
    }
  });
});
