import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenShellError } from "@openshell/core";
import { afterAll, describe, expect, it } from "vitest";
import { locateProblem, readPolicyFile } from "./policy-file.js";

const dir = mkdtempSync(join(tmpdir(), "policy-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function problemOf(path: string): OpenShellError {
  try {
    readPolicyFile(path);
  } catch (error) {
    if (error instanceof OpenShellError) return error;
    throw error;
  }
  throw new Error("no problem reported");
}

describe("readPolicyFile", () => {
  it("reads a valid policy", () => {
    const path = file(
      "ok.yaml",
      "version: 1\nnetwork_policies:\n  api:\n    endpoints:\n      - { host: api.example.com, port: 443 }\n",
    );
    const { policy, warnings } = readPolicyFile(path);
    expect(policy.version).toBe(1);
    expect(policy.networkPolicies.api?.endpoints[0]?.ports).toEqual([443]);
    expect(warnings).toEqual([]);
  });

  it("names file, line and YAML path of an unknown field (exit 2)", () => {
    const path = file("unknown.yaml", "version: 1\nfilesystem_policy:\n  read_only: [/usr]\n  bogus: true\n");
    const error = problemOf(path);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toContain("nothing was sent");
    expect(error.message).toMatch(new RegExp(`${path}:4: filesystem_policy\\.bogus: `));
  });

  it("reports a '..' path and invalid YAML with their lines", () => {
    const traversal = file(
      "dots.yaml",
      "version: 1\nfilesystem_policy:\n  read_write:\n    - /sandbox/../etc\n",
    );
    expect(problemOf(traversal).message).toMatch(/dots\.yaml:4: .*'\.\.' traversal/);
    const broken = file("broken.yaml", "version: 1\nnetwork_policies: [\n");
    expect(problemOf(broken).message).toMatch(/broken\.yaml:\d+: invalid YAML/);
  });

  it("refuses a missing file as not found (exit 4) with the flag to fix", () => {
    const error = problemOf(join(dir, "missing.yaml"));
    expect(error.code).toBe("not_found");
    expect(error.message).toContain("pass the path of a policy YAML to --policy");
  });
});

describe("locateProblem", () => {
  it("turns '<path> (line N): reason' into FILE:N: path: reason", () => {
    expect(locateProblem("p.yaml", "process.run_as_user (line 7): must be 'sandbox'")).toBe(
      "p.yaml:7: process.run_as_user: must be 'sandbox'",
    );
    expect(locateProblem("p.yaml", "yaml (line 2): invalid YAML: x")).toBe("p.yaml:2: invalid YAML: x");
    expect(locateProblem("p.yaml", "something else")).toBe("p.yaml: something else");
  });
});
