import { create } from "@bufbuild/protobuf";
import { compute, SandboxSchema } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { toDriverSandbox, toPublicStatus } from "./driver-mapping.js";

describe("toPublicStatus", () => {
  it("passes the driver's storage figures on, and none when the driver reports none", () => {
    const reported = create(compute.DriverSandboxStatusSchema, {
      storage: { diskBytes: 5n, memorySnapshotBytes: 7n },
    });
    expect(toPublicStatus(reported, "n").storage).toMatchObject({ diskBytes: 5n, memorySnapshotBytes: 7n });
    expect(toPublicStatus(create(compute.DriverSandboxStatusSchema, {}), "n").storage).toBeUndefined();
  });
});

describe("toDriverSandbox", () => {
  it("maps the template's resources to typed requirements and hands the whole struct (disk too) to the driver", () => {
    const resources = {
      requests: { cpu: "2", memory: "512Mi", "ephemeral-storage": "10Gi" },
      limits: { cpu: "2", memory: "512Mi", "ephemeral-storage": "10Gi" },
    };
    const sandbox = create(SandboxSchema, { id: "i", name: "n", spec: { template: { resources } } });
    const template = toDriverSandbox(sandbox, "token").spec?.template;
    expect(template?.resources).toMatchObject({
      cpuRequest: "2",
      cpuLimit: "2",
      memoryRequest: "512Mi",
      memoryLimit: "512Mi",
    });
    expect(template?.platformConfig).toEqual({ resources_raw: resources });
  });

  it("hands node selector, tolerations (as Kubernetes writes them) and pull secrets to the driver's platform config", () => {
    const sandbox = create(SandboxSchema, {
      id: "i",
      name: "n",
      spec: {
        template: {
          nodeSelector: { pool: "sandboxes" },
          tolerations: [
            { key: "gpu", operator: "Equal", value: "a100", effect: "NoExecute", tolerationSeconds: 300n },
            { operator: "Exists" },
          ],
          imagePullSecrets: ["regcred"],
        },
      },
    });
    expect(toDriverSandbox(sandbox, "token").spec?.template?.platformConfig).toEqual({
      node_selector: { pool: "sandboxes" },
      tolerations: [
        { key: "gpu", operator: "Equal", value: "a100", effect: "NoExecute", tolerationSeconds: 300 },
        { operator: "Exists" },
      ],
      image_pull_secrets: ["regcred"],
    });
  });

  it("sends no resources or platform config when the template has none", () => {
    const template = toDriverSandbox(create(SandboxSchema, { id: "i", name: "n", spec: {} }), "t").spec
      ?.template;
    expect(template?.resources).toBeUndefined();
    expect(template?.platformConfig).toBeUndefined();
  });
});
