import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@openshell/core";
import { restrictiveDefaultPolicy } from "@openshell/policy";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { discoverPolicy } from "./policy-discovery.js";

const POLICY = (host: string, user = "sandbox") => `version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr]
  read_write: [/sandbox, /tmp]
landlock:
  compatibility: best_effort
process:
  run_as_user: ${user}
  run_as_group: sandbox
network_policies:
  api:
    name: api
    endpoints:
      - { host: ${host}, port: 443 }
    binaries:
      - { path: /usr/bin/curl }
`;

/** A logger whose records the test can read. */
function recordingLogger() {
  const records: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    name: "discovery-test",
    level: "debug",
    destination: { write: (line: string) => records.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, records };
}

describe("discoverPolicy", () => {
  let root: string;
  const write = (relative: string, text: string) => {
    mkdirSync(join(root, relative, ".."), { recursive: true });
    writeFileSync(join(root, relative), text);
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "osdisc-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("without a policy file: the restrictive default", async () => {
    const { logger, records } = recordingLogger();
    const found = await discoverPolicy(root, logger);
    expect(found).toEqual({ policy: restrictiveDefaultPolicy(), origin: "default" });
    expect(records.some((r) => String(r.msg).startsWith("CONFIG:DEFAULT"))).toBe(true);
  });

  it("takes etc/openshell/policy.yaml before the legacy etc/navigator/policy.yaml", async () => {
    const { logger } = recordingLogger();
    write("etc/navigator/policy.yaml", POLICY("legacy.example.com"));
    const legacy = await discoverPolicy(root, logger);
    expect(legacy).toMatchObject({ origin: "disk", path: join(root, "etc/navigator/policy.yaml") });
    expect(legacy.policy.networkPolicies.api?.endpoints[0]?.host).toBe("legacy.example.com");

    write("etc/openshell/policy.yaml", POLICY("current.example.com"));
    const current = await discoverPolicy(root, logger);
    expect(current).toMatchObject({ origin: "disk", path: join(root, "etc/openshell/policy.yaml") });
    expect(current.policy.networkPolicies.api?.endpoints[0]?.host).toBe("current.example.com");
  });

  it("adds the baseline paths the image has to a policy with network rules", async () => {
    const { logger } = recordingLogger();
    mkdirSync(join(root, "etc/openshell"), { recursive: true });
    mkdirSync(join(root, "lib"));
    write("etc/openshell/policy.yaml", POLICY("api.example.com"));
    const found = await discoverPolicy(root, logger);
    // /usr was listed; /etc and /lib exist under the root; /app, /var/log, /proc, /dev/urandom do not.
    expect(found.policy.filesystem?.readOnly).toEqual(["/usr", "/lib", "/etc"]);
    expect(found.policy.filesystem?.readWrite).toEqual(["/sandbox", "/tmp"]);
  });

  it("an unsafe policy file is refused: restrictive default and a FINDING unsafe-disk-policy", async () => {
    const { logger, records } = recordingLogger();
    write("etc/openshell/policy.yaml", POLICY("api.example.com", "root"));
    const found = await discoverPolicy(root, logger);
    expect(found).toEqual({
      policy: restrictiveDefaultPolicy(),
      origin: "default",
      path: join(root, "etc/openshell/policy.yaml"),
    });
    const finding = records.find((r) => (r.ocsf as { class?: string } | undefined)?.class === "FINDING");
    expect(finding).toMatchObject({ finding: "unsafe-disk-policy", level: "error" });
    expect(String(finding?.msg)).toContain("run_as_user must be 'sandbox', got 'root'");
  });

  it("a policy file that does not parse is refused the same way (the legacy one is not tried)", async () => {
    const { logger, records } = recordingLogger();
    write("etc/openshell/policy.yaml", "version: 1\nbogus_field: [\n");
    write("etc/navigator/policy.yaml", POLICY("legacy.example.com"));
    const found = await discoverPolicy(root, logger);
    expect(found.origin).toBe("default");
    expect(found.policy).toEqual(restrictiveDefaultPolicy());
    expect(records.some((r) => (r as { finding?: string }).finding === "unsafe-disk-policy")).toBe(true);
  });
});
