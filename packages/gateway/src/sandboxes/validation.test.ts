import { create } from "@bufbuild/protobuf";
import { SandboxSpecSchema } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { SPEC_LIMITS, validateSandboxName, validateSandboxSpec } from "./validation.js";

const spec = (init: Parameters<typeof create<typeof SandboxSpecSchema>>[1] = {}) =>
  create(SandboxSpecSchema, init);

describe("validateSandboxSpec", () => {
  it("requires a spec", () => {
    expect(() => validateSandboxSpec(undefined)).toThrow("spec is required");
  });

  it("accepts an empty spec and one at every limit", () => {
    expect(() => validateSandboxSpec(spec())).not.toThrow();
    const environment = Object.fromEntries(
      Array.from({ length: SPEC_LIMITS.envEntries }, (_, i) => [
        `K${i}`,
        "v".repeat(SPEC_LIMITS.envValueBytes),
      ]),
    );
    expect(() => validateSandboxSpec(spec({ environment }))).not.toThrow();
  });

  it("rejects too many env entries, oversized values and bad keys", () => {
    const tooMany = Object.fromEntries(
      Array.from({ length: SPEC_LIMITS.envEntries + 1 }, (_, i) => [`K${i}`, "v"]),
    );
    expect(() => validateSandboxSpec(spec({ environment: tooMany }))).toThrow(
      /129 entries; the limit is 128/,
    );
    expect(() => validateSandboxSpec(spec({ environment: { BIG: "x".repeat(8193) } }))).toThrow(
      /8193 bytes; the limit is 8192/,
    );
    expect(() => validateSandboxSpec(spec({ environment: { "1BAD": "v" } }))).toThrow(
      /spec.environment key '1BAD' is invalid/,
    );
  });

  it.each([
    ["spec.environment", (environment: Record<string, string>) => spec({ environment })],
    [
      "spec.template.environment",
      (environment: Record<string, string>) => spec({ template: { environment } }),
    ],
  ])("%s: rejects names the system sets, naming the variable", (field, build) => {
    for (const name of [
      "OPENSHELL_SUPERVISOR_TOKEN",
      "OPENSHELL_ENDPOINT",
      "OPENSHELL_SANDBOX_ID",
      "OPENSHELL_SANDBOX",
      "OPENSHELL_SSH_SOCKET_PATH",
      "OPENSHELL_LOG_LEVEL",
      "OPENSHELL_TLS_CA",
      "OPENSHELL_ANYTHING_LATER",
      "NODE_OPTIONS",
      "NODE_COMPILE_CACHE",
      "NODE_TLS_REJECT_UNAUTHORIZED",
    ]) {
      expect(() => validateSandboxSpec(build({ [name]: "x" }))).toThrow(
        new RegExp(`^${field} sets ${name}, which is reserved: .*; use another name$`),
      );
    }
    // Overriding these does not break the supervisor (absolute paths, shells built from scratch).
    for (const name of ["HOME", "PATH", "USER", "TERM", "LANG", "NODE_ENV", "openshell_lowercase"]) {
      expect(() => validateSandboxSpec(build({ [name]: "x" }))).not.toThrow();
    }
  });

  it.each(["a\nb", "a\rb", "a\0b", "trailing\n"])(
    "rejects the value %j (CR, LF, NUL) as exec does",
    (value) => {
      expect(() => validateSandboxSpec(spec({ environment: { GREETING: value } }))).toThrow(
        "spec.environment value of GREETING contains NUL, CR or LF",
      );
      expect(() => validateSandboxSpec(spec({ template: { environment: { GREETING: value } } }))).toThrow(
        "spec.template.environment value of GREETING contains NUL, CR or LF",
      );
    },
  );

  it("rejects oversized template fields, providers and log level", () => {
    expect(() => validateSandboxSpec(spec({ template: { image: "i".repeat(1025) } }))).toThrow(
      /spec.template.image is 1025 bytes/,
    );
    expect(() =>
      validateSandboxSpec(spec({ providers: Array.from({ length: 33 }, (_, i) => `p${i}`) })),
    ).toThrow(/33 entries/);
    expect(() => validateSandboxSpec(spec({ logLevel: "x".repeat(33) }))).toThrow(/log_level/);
    const big = { blob: "x".repeat(70_000) };
    expect(() => validateSandboxSpec(spec({ template: { resources: big } }))).toThrow(
      /resources is \d+ bytes encoded/,
    );
  });

  it("accepts node selector, tolerations and pull secrets Kubernetes would accept, refuses the rest", () => {
    const good = spec({
      template: {
        nodeSelector: { pool: "sandboxes" },
        tolerations: [
          { key: "gpu", operator: "Equal", value: "a100", effect: "NoExecute", tolerationSeconds: 60n },
          { operator: "Exists" },
          { key: "dedicated", effect: "NoSchedule" },
        ],
        imagePullSecrets: ["regcred", "team.registry-1"],
      },
    });
    expect(() => validateSandboxSpec(good)).not.toThrow();
    const bad = (template: Parameters<typeof spec>[0]) => () => validateSandboxSpec(spec(template));
    expect(bad({ template: { tolerations: [{ key: "k", operator: "In" }] } })).toThrow(
      "spec.template.tolerations[0].operator 'In' is not Exists or Equal",
    );
    expect(bad({ template: { tolerations: [{ key: "k", effect: "NoRun" }] } })).toThrow(
      "spec.template.tolerations[0].effect 'NoRun' is not NoSchedule, PreferNoSchedule or NoExecute",
    );
    expect(bad({ template: { tolerations: [{ key: "k", operator: "Exists", value: "v" }] } })).toThrow(
      "operator Exists takes no value",
    );
    expect(bad({ template: { tolerations: [{ value: "v" }] } })).toThrow(
      "a toleration without a key must use operator Exists",
    );
    expect(bad({ template: { imagePullSecrets: ["Reg_Cred"] } })).toThrow(
      "spec.template.image_pull_secrets: 'Reg_Cred' is not a Secret name",
    );
    expect(bad({ template: { nodeSelector: { k: "v".repeat(1025) } } })).toThrow(
      "spec.template.node_selector['k'] is 1025 bytes",
    );
  });

  it("errors carry the invalid_argument code", () => {
    try {
      validateSandboxSpec(undefined);
    } catch (error) {
      expect((error as { code: string }).code).toBe("invalid_argument");
    }
    expect.assertions(1);
  });
});

describe("validateSandboxName", () => {
  it.each(["a", "brave-otter", "x1", "a".repeat(63)])("accepts %s", (name) => {
    expect(() => validateSandboxName(name)).not.toThrow();
  });
  it.each(["Upper", "-lead", "trail-", "has space", "semi;colon", "dot.ted"])("rejects %s", (name) => {
    expect(() => validateSandboxName(name)).toThrow(/is invalid/);
  });
  it("rejects names over 253 bytes", () => {
    expect(() => validateSandboxName("a".repeat(254))).toThrow(/254 bytes; the limit is 253/);
  });
});
