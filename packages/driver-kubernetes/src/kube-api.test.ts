import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import { afterEach, describe, expect, it } from "vitest";
import { KubeApi, loadKubeConfig } from "./kube-api.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function kubeconfigFile(server: string): string {
  const dir = mkdtempSync(join(tmpdir(), "osk8s-config-"));
  dirs.push(dir);
  const file = join(dir, "config");
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server, "insecure-skip-tls-verify": true } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
      "current-context": "ctx",
    }),
  );
  return file;
}

describe("loadKubeConfig", () => {
  it("names what to provide when there is no configuration at all", () => {
    const home = mkdtempSync(join(tmpdir(), "osk8s-home-"));
    dirs.push(home);
    expect(() => loadKubeConfig({ kubeconfig: undefined, context: undefined, env: { HOME: home } })).toThrow(
      /no Kubernetes configuration.*--kubeconfig FILE \(or set KUBECONFIG\)/,
    );
  });

  it("refuses a context the kubeconfig does not have, listing the ones it has", () => {
    const file = kubeconfigFile("http://127.0.0.1:1");
    expect(() => loadKubeConfig({ kubeconfig: file, context: "nope", env: {} })).toThrow(/contexts: ctx/);
    expect(loadKubeConfig({ kubeconfig: undefined, context: "ctx", env: { KUBECONFIG: file } }).source).toBe(
      file,
    );
  });
});

describe("KubeApi", () => {
  it("ends a call the API server never answers with §5.1's timeout", async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const { config } = loadKubeConfig({
        kubeconfig: kubeconfigFile(`http://127.0.0.1:${port}`),
        context: undefined,
        env: {},
      });
      const api = new KubeApi(config, "ns", 300);
      const error = await api.listSandboxes("a=b").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenShellError);
      expect((error as OpenShellError).code).toBe("deadline_exceeded");
      expect((error as OpenShellError).message).toBe(
        "Kubernetes list sandboxes.agents.x-k8s.io in namespace ns: timed out after 30s waiting for Kubernetes API",
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});
