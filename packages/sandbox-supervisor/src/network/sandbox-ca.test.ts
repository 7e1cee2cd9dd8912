import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { caEnvironment, SandboxCa } from "./sandbox-ca.js";

describe("SandboxCa", () => {
  let ca: SandboxCa;
  let caCert: X509Certificate;
  const dir = mkdtempSync(join(tmpdir(), "sandbox-ca-"));
  beforeAll(async () => {
    ca = await SandboxCa.create();
    caCert = new X509Certificate(ca.certPem);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is a self-signed CA", () => {
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toBe("CN=OpenShell Sandbox CA");
    expect(caCert.verify(caCert.publicKey)).toBe(true);
    expect(caCert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  it("issues leaves for DNS names and IP literals, signed by the CA", async () => {
    for (const [host, san] of [
      ["api.github.com", "DNS:api.github.com"],
      ["10.0.2.2", "IP Address:10.0.2.2"],
      ["[2001:db8::1]", "IP Address:2001:DB8:0:0:0:0:0:1"],
    ] as const) {
      const leaf = new X509Certificate((await ca.issueLeaf(host)).cert);
      expect(leaf.ca).toBe(false);
      expect(leaf.checkIssued(caCert)).toBe(true);
      expect(leaf.verify(caCert.publicKey)).toBe(true);
      expect(leaf.subjectAltName).toBe(san);
      const bare = host.replace(/^\[(.*)\]$/, "$1");
      expect(isIP(bare) !== 0 ? leaf.checkIP(bare) : leaf.checkHost(host)).toBe(bare);
    }
  });

  it("keeps at most 256 leaf contexts, the least recently used dropped", async () => {
    const fresh = await SandboxCa.create();
    const first = await fresh.contextFor("h0.test");
    await Promise.all(Array.from({ length: 256 }, (_, i) => fresh.contextFor(`h${i + 1}.test`)));
    expect(fresh.cachedLeaves).toBe(256);
    expect(await fresh.contextFor("h256.test")).toBe(await fresh.contextFor("h256.test"));
    expect(await fresh.contextFor("h0.test")).not.toBe(first);
  });

  it("writes the CA and the system bundle plus the CA, readable by everyone", async () => {
    const env = ca.writeFiles(dir);
    expect(env).toEqual(caEnvironment(dir));
    expect(readFileSync(env.NODE_EXTRA_CA_CERTS ?? "", "utf8")).toBe(ca.certPem);
    const bundle = readFileSync(env.SSL_CERT_FILE ?? "", "utf8");
    expect(bundle.endsWith(ca.certPem)).toBe(true);
    expect(statSync(env.SSL_CERT_FILE ?? "").mode & 0o777).toBe(0o644);
    expect(statSync(dir).mode & 0o777).toBe(0o755);
  });
});
