import { create, toBinary } from "@bufbuild/protobuf";
import { SandboxSpecSchema, sandboxv1 } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { emptySettings, type StoredSettings } from "../policies/stored-settings.js";
import type { PolicyRevisionRecord, PolicyRevisionStatus } from "../store/store.js";
import { type ForkSource, forkInheritance } from "./fork-inheritance.js";

/** A policy told apart by its filesystem paths; identity left empty (the gateway fills it in). */
const policy = (path: string) =>
  create(sandboxv1.SandboxPolicySchema, {
    version: 1,
    filesystem: { readOnly: [path], readWrite: ["/sandbox"] },
  });

const revision = (
  version: number,
  status: PolicyRevisionStatus,
  of: sandboxv1.SandboxPolicy,
): PolicyRevisionRecord => ({
  id: `r${version}`,
  sandboxId: "source-id",
  version,
  policyPayload: toBinary(sandboxv1.SandboxPolicySchema, of),
  policyHash: `h${version}`,
  status,
  loadError: status === "failed" ? "bad" : undefined,
  createdAtMs: version,
  loadedAtMs: undefined,
});

const sourceSpec = () =>
  create(SandboxSpecSchema, {
    logLevel: "debug",
    environment: { A: "1" },
    providers: ["github"],
    gpu: true,
    policy: policy("/created"),
    template: {
      image: "img:1",
      environment: { T: "2" },
      resources: { cpu: "2" },
    },
  });

const source = (fields: Partial<ForkSource> = {}): ForkSource => ({
  spec: sourceSpec(),
  latestRevision: undefined,
  inForceRevision: undefined,
  settings: emptySettings(),
  ...fields,
});

const readOnlyOf = (spec: { policy?: sandboxv1.SandboxPolicy }) => spec.policy?.filesystem?.readOnly;

describe("forkInheritance", () => {
  it("copies every spec field of the source (a copy: changing it leaves the source alone)", () => {
    const from = source();
    const { spec } = forkInheritance(from);
    expect(spec.logLevel).toBe("debug");
    expect(spec.environment).toEqual({ A: "1" });
    expect(spec.providers).toEqual(["github"]);
    expect(spec.gpu).toBe(true);
    expect(spec.template?.image).toBe("img:1");
    expect(spec.template?.environment).toEqual({ T: "2" });
    expect(spec.template?.resources).toEqual({ cpu: "2" });
    spec.environment.A = "changed";
    spec.template!.image = "changed";
    expect(from.spec?.environment.A).toBe("1");
    expect(from.spec?.template?.image).toBe("img:1");
  });

  it("with no revisions, the creation policy, with the process identity filled in", () => {
    const { spec } = forkInheritance(source());
    expect(readOnlyOf(spec)).toEqual(["/created"]);
    expect(spec.policy?.process).toMatchObject({ runAsUser: "sandbox", runAsGroup: "sandbox" });
  });

  it("the newest revision when it is pending or loaded", () => {
    for (const status of ["pending", "loaded"] as const) {
      const { spec } = forkInheritance(
        source({
          latestRevision: revision(3, status, policy("/newest")),
          inForceRevision: revision(2, "superseded", policy("/in-force")),
        }),
      );
      expect({ status, readOnly: readOnlyOf(spec) }).toEqual({ status, readOnly: ["/newest"] });
      expect(spec.policy?.process?.runAsUser).toBe("sandbox");
    }
  });

  it("the revision in force when the newest failed to load, else the creation policy", () => {
    const failed = revision(3, "failed", policy("/failed"));
    const inForce = forkInheritance(
      source({ latestRevision: failed, inForceRevision: revision(2, "superseded", policy("/in-force")) }),
    );
    expect(readOnlyOf(inForce.spec)).toEqual(["/in-force"]);
    const nothingLoaded = forkInheritance(source({ latestRevision: failed }));
    expect(readOnlyOf(nothingLoaded.spec)).toEqual(["/created"]);
  });

  it("no policy when the source has none anywhere (the fork discovers its own)", () => {
    const spec = sourceSpec();
    delete spec.policy;
    expect(forkInheritance(source({ spec })).spec.policy).toBeUndefined();
    expect(forkInheritance(source({ spec: undefined })).spec).toEqual(create(SandboxSpecSchema));
  });

  it("a copy of the source's own settings, none when it has none", () => {
    expect(forkInheritance(source()).settings).toBeUndefined();
    const settings: StoredSettings = {
      revision: 4n,
      settings: new Map([["ocsf_json_enabled", { type: "Bool", value: true }]]),
    };
    const inherited = forkInheritance(source({ settings })).settings;
    expect(inherited).toEqual(settings);
    inherited?.settings.delete("ocsf_json_enabled");
    expect(settings.settings.size).toBe(1);
  });
});
