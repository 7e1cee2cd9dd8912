import { create } from "@bufbuild/protobuf";
import { compute } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import {
  buildSandboxResource,
  buildSupervisorSecret,
  type SandboxResourceOptions,
  SUPERVISOR_COPY_SCRIPT,
  WORKSPACE_INIT_SCRIPT,
} from "./sandbox-resource.js";

const options: SandboxResourceOptions = {
  namespace: "openshell",
  apiVersion: "agents.x-k8s.io/v1alpha1",
  defaultImage: "ghcr.io/example/sandbox:1",
  imagePullPolicy: undefined,
  supervisorImage: "ghcr.io/example/openshell-gateway:0.1.0",
  endpoint: "http://openshell.openshell.svc.cluster.local:8080",
  clientTlsSecret: undefined,
  storageClass: undefined,
  workspaceSize: "2Gi",
  nodeSelector: {},
  imagePullSecrets: [],
};

function sandbox(spec: Parameters<typeof create<typeof compute.DriverSandboxSpecSchema>>[1] = {}) {
  return create(compute.DriverSandboxSchema, {
    id: "0b6c3a8e-1111-4222-8333-444455556666",
    name: "brave-otter",
    namespace: "openshell",
    spec: { supervisorToken: "tok-123", ...spec },
  });
}

describe("buildSandboxResource (§5.1 field by field)", () => {
  it("writes the resource, labels and the spec's fields in §5.1's order", () => {
    const resource = buildSandboxResource(
      sandbox({
        logLevel: "debug",
        environment: { A: "1" },
        template: { agentSocketPath: "/run/agent.sock" },
      }),
      options,
    );
    expect(resource.apiVersion).toBe("agents.x-k8s.io/v1alpha1");
    expect(resource.kind).toBe("Sandbox");
    expect(resource.metadata).toEqual({
      name: "brave-otter",
      namespace: "openshell",
      labels: {
        "openshell.ai/sandbox-id": "0b6c3a8e-1111-4222-8333-444455556666",
        "openshell.ai/managed-by": "openshell",
      },
    });
    expect(Object.keys(resource.spec)).toEqual([
      "logLevel",
      "environment",
      "agentSocket",
      "volumeClaimTemplates",
      "podTemplate",
    ]);
    expect(resource.spec.logLevel).toBe("debug");
    expect(resource.spec.environment).toEqual({ A: "1" });
    expect(resource.spec.agentSocket).toBe("/run/agent.sock");
  });

  it("injects the default workspace claim (2Gi, ReadWriteOnce) and its storage class when set", () => {
    const plain = buildSandboxResource(sandbox(), options);
    expect(plain.spec.volumeClaimTemplates).toEqual([
      {
        metadata: { name: "workspace" },
        spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "2Gi" } } },
      },
    ]);
    const classed = buildSandboxResource(sandbox(), {
      ...options,
      storageClass: "fast",
      workspaceSize: "5Gi",
    });
    expect(classed.spec.volumeClaimTemplates?.[0]?.spec).toEqual({
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: "5Gi" } },
      storageClassName: "fast",
    });
  });

  it("runs the supervisor as the agent's entrypoint with upstream's capabilities, root, env in order", () => {
    const resource = buildSandboxResource(
      sandbox({
        environment: { SPEC_ONLY: "s", SHARED: "from-spec", OPENSHELL_SANDBOX: "spoofed" },
        template: { environment: { TEMPLATE_ONLY: "t", SHARED: "from-template" } },
      }),
      options,
    );
    const agent = resource.spec.podTemplate.spec?.containers[0];
    expect(agent?.name).toBe("agent");
    expect(agent?.image).toBe("ghcr.io/example/sandbox:1");
    expect(agent?.imagePullPolicy).toBeUndefined();
    expect(agent?.command).toEqual(["/opt/openshell/bin/openshell-sandbox"]);
    expect(agent?.securityContext).toEqual({
      capabilities: { add: ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYSLOG"] },
      runAsUser: 0,
    });
    expect(agent?.env).toEqual([
      { name: "TEMPLATE_ONLY", value: "t" },
      { name: "SHARED", value: "from-spec" },
      { name: "SPEC_ONLY", value: "s" },
      { name: "OPENSHELL_SANDBOX", value: "brave-otter" },
      { name: "OPENSHELL_SANDBOX_ID", value: "0b6c3a8e-1111-4222-8333-444455556666" },
      { name: "OPENSHELL_ENDPOINT", value: "http://openshell.openshell.svc.cluster.local:8080" },
      { name: "OPENSHELL_SANDBOX_COMMAND", value: "sleep infinity" },
      { name: "OPENSHELL_SSH_SOCKET_PATH", value: "/run/openshell/ssh.sock" },
      {
        name: "OPENSHELL_SUPERVISOR_TOKEN",
        valueFrom: { secretKeyRef: { name: "brave-otter-supervisor", key: "token" } },
      },
    ]);
    expect(JSON.stringify(resource)).not.toContain("tok-123");
    expect(agent?.volumeMounts).toEqual([
      { name: "openshell-supervisor-bin", mountPath: "/opt/openshell/bin", readOnly: true },
      { name: "workspace", mountPath: "/sandbox" },
    ]);
  });

  it("delivers the supervisor through an init container and an emptyDir (no hostPath), then seeds the workspace once", () => {
    const resource = buildSandboxResource(sandbox(), { ...options, imagePullPolicy: "IfNotPresent" });
    const pod = resource.spec.podTemplate.spec;
    expect(pod?.volumes).toEqual([{ name: "openshell-supervisor-bin", emptyDir: {} }]);
    expect(JSON.stringify(pod)).not.toContain("hostPath");
    expect(pod?.initContainers).toEqual([
      {
        name: "openshell-supervisor",
        image: "ghcr.io/example/openshell-gateway:0.1.0",
        imagePullPolicy: "IfNotPresent",
        command: ["sh", "-c", SUPERVISOR_COPY_SCRIPT],
        volumeMounts: [{ name: "openshell-supervisor-bin", mountPath: "/openshell-supervisor-bin" }],
      },
      {
        name: "workspace-init",
        image: "ghcr.io/example/sandbox:1",
        imagePullPolicy: "IfNotPresent",
        command: ["sh", "-c", WORKSPACE_INIT_SCRIPT],
        securityContext: { runAsUser: 0 },
        volumeMounts: [{ name: "workspace", mountPath: "/workspace-pvc" }],
      },
    ]);
    expect(SUPERVISOR_COPY_SCRIPT).toBe("cp -a /opt/openshell/bin/. /openshell-supervisor-bin/");
    expect(WORKSPACE_INIT_SCRIPT).toBe(
      "if [ ! -f /workspace-pvc/.workspace-initialized ]; then if [ -d /sandbox ]; then tar -C /sandbox -cf - . | tar -C /workspace-pvc -xpf -; fi && touch /workspace-pvc/.workspace-initialized; fi",
    );
  });

  it("mounts the client TLS secret (0400) and points the supervisor at it for an https endpoint", () => {
    const resource = buildSandboxResource(sandbox(), {
      ...options,
      endpoint: "https://gw:8080",
      clientTlsSecret: "openshell-client-tls",
    });
    const pod = resource.spec.podTemplate.spec;
    expect(pod?.volumes?.[0]).toEqual({
      name: "openshell-client-tls",
      secret: { secretName: "openshell-client-tls", defaultMode: 256 },
    });
    const agent = pod?.containers[0];
    expect(agent?.volumeMounts?.[0]).toEqual({
      name: "openshell-client-tls",
      mountPath: "/etc/openshell-tls/client",
      readOnly: true,
    });
    expect(agent?.env?.slice(-3)).toEqual([
      { name: "OPENSHELL_TLS_CA", value: "/etc/openshell-tls/client/ca.crt" },
      { name: "OPENSHELL_TLS_CERT", value: "/etc/openshell-tls/client/tls.crt" },
      { name: "OPENSHELL_TLS_KEY", value: "/etc/openshell-tls/client/tls.key" },
    ]);
  });

  it("takes labels, annotations, runtime class, resources, scheduling and pull secrets from the template", () => {
    const resource = buildSandboxResource(
      sandbox({
        gpu: true,
        template: {
          image: "my/image:2",
          labels: { team: "a" },
          resources: { cpuRequest: "500m", memoryLimit: "2Gi" },
          platformConfig: {
            runtime_class_name: "gvisor",
            annotations: { "example.com/a": "b" },
            resources_raw: { requests: { cpu: "1", "ephemeral-storage": "1Gi" }, limits: { memory: "1Gi" } },
            node_selector: { pool: "sandboxes" },
            tolerations: [{ key: "sandbox", operator: "Exists", effect: "NoSchedule" }],
            image_pull_secrets: ["regcred"],
          },
        },
      }),
      { ...options, nodeSelector: { zone: "a" }, imagePullSecrets: ["global"] },
    );
    const template = resource.spec.podTemplate;
    expect(template.metadata?.labels).toEqual({
      team: "a",
      "openshell.ai/sandbox-id": "0b6c3a8e-1111-4222-8333-444455556666",
      "openshell.ai/managed-by": "openshell",
    });
    expect(template.metadata?.annotations).toEqual({ "example.com/a": "b" });
    expect(template.spec?.runtimeClassName).toBe("gvisor");
    expect(template.spec?.nodeSelector).toEqual({ zone: "a", pool: "sandboxes" });
    expect(template.spec?.tolerations).toEqual([
      { key: "sandbox", operator: "Exists", effect: "NoSchedule" },
    ]);
    expect(template.spec?.imagePullSecrets).toEqual([{ name: "global" }, { name: "regcred" }]);
    const agent = template.spec?.containers[0];
    expect(agent?.image).toBe("my/image:2");
    expect(agent?.resources).toEqual({
      requests: { cpu: "500m", "ephemeral-storage": "1Gi" },
      limits: { memory: "2Gi", "nvidia.com/gpu": "1" },
    });
  });

  it("uses the user's claim templates instead of the default, without the workspace mount unless one is named workspace", () => {
    const custom = {
      metadata: { name: "data" },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "10Gi" } } },
    };
    const resource = buildSandboxResource(
      sandbox({ template: { platformConfig: { volume_claim_templates: { items: [custom] } } } }),
      options,
    );
    expect(resource.spec.volumeClaimTemplates).toEqual([custom]);
    const pod = resource.spec.podTemplate.spec;
    expect(pod?.initContainers?.map((c) => c.name)).toEqual(["openshell-supervisor"]);
    expect(pod?.containers[0]?.volumeMounts?.map((m) => m.name)).toEqual(["openshell-supervisor-bin"]);
  });

  it("refuses a sandbox without an image when the driver has no default", () => {
    expect(() => buildSandboxResource(sandbox(), { ...options, defaultImage: "" })).toThrow(
      /--sandbox-image/,
    );
  });
});

describe("buildSupervisorSecret", () => {
  it("holds the credential base64-encoded, labelled, owned by the Sandbox when given", () => {
    const secret = buildSupervisorSecret(sandbox(), "openshell", {
      apiVersion: "agents.x-k8s.io/v1alpha1",
      name: "brave-otter",
      uid: "uid-1",
    });
    expect(secret.metadata?.name).toBe("brave-otter-supervisor");
    expect(secret.data).toEqual({ token: Buffer.from("tok-123").toString("base64") });
    expect(secret.metadata?.labels?.["openshell.ai/sandbox-id"]).toBe("0b6c3a8e-1111-4222-8333-444455556666");
    expect(secret.metadata?.ownerReferences).toEqual([
      {
        apiVersion: "agents.x-k8s.io/v1alpha1",
        kind: "Sandbox",
        name: "brave-otter",
        uid: "uid-1",
        blockOwnerDeletion: true,
      },
    ]);
  });
});
