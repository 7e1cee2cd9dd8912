import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { compute } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import {
  buildContainerSpec,
  type ContainerSpecOptions,
  SANDBOX_CAPABILITIES,
  validateSandbox,
} from "./container-spec.js";

const OPTIONS: ContainerSpecOptions = {
  defaultImage: "openshell/sandbox:1",
  endpoint: "http://host.openshell.internal:8080",
  network: "openshell",
  hostAddress: "10.215.0.1",
  supervisorDir: "/state/supervisor/abc",
  instance: "inst-1",
};

function sandbox(
  fields: { id?: string; name?: string } = {},
  spec: MessageInitShape<typeof compute.DriverSandboxSpecSchema> = {},
) {
  return create(compute.DriverSandboxSchema, {
    id: "0b3c-id",
    name: "my-box",
    ...fields,
    spec: create(compute.DriverSandboxSpecSchema, { supervisorToken: "tok", ...spec }),
  });
}

describe("buildContainerSpec", () => {
  it("runs the mounted supervisor as root with the listed capabilities, no published port, not privileged", () => {
    const spec = buildContainerSpec(sandbox(), OPTIONS);
    expect(spec).toMatchObject({
      name: "openshell-my-box",
      Hostname: "my-box",
      Image: "openshell/sandbox:1",
      Entrypoint: ["/opt/openshell/bin/openshell-sandbox"],
      Cmd: [],
      User: "0:0",
      Labels: {
        "openshell.ai/sandbox-id": "0b3c-id",
        "openshell.ai/sandbox-name": "my-box",
        "openshell.ai/managed-by": "openshell",
        "openshell.ai/driver-instance": "inst-1",
      },
    });
    const host = spec.HostConfig ?? {};
    expect(host.CapAdd).toEqual([...SANDBOX_CAPABILITIES]);
    expect(host.Privileged).toBeUndefined();
    expect(host.PortBindings).toBeUndefined();
    expect(spec.ExposedPorts).toBeUndefined();
    expect(host.NetworkMode).toBe("openshell");
    expect(host.ExtraHosts).toEqual(["host.openshell.internal:10.215.0.1"]);
    expect(host.RestartPolicy).toEqual({ Name: "unless-stopped" });
    expect(host.Mounts).toEqual([
      { Type: "bind", Source: "/state/supervisor/abc", Target: "/opt/openshell/bin", ReadOnly: true },
      { Type: "volume", Source: "openshell-workspace-0b3c-id", Target: "/sandbox" },
    ]);
    expect(host.Memory).toBeUndefined();
    expect(host.NanoCpus).toBeUndefined();
  });

  it("environment: template's, then sandbox's, then the supervisor's own, which win", () => {
    const spec = buildContainerSpec(
      sandbox(
        {},
        {
          logLevel: "debug",
          environment: { A: "sandbox", OPENSHELL_SANDBOX_ID: "forged" },
          template: { environment: { A: "template", B: "template" } },
        },
      ),
      OPTIONS,
    );
    expect(spec.Env).toEqual([
      "A=sandbox",
      "B=template",
      "OPENSHELL_SANDBOX_ID=0b3c-id",
      "OPENSHELL_SANDBOX=my-box",
      "OPENSHELL_ENDPOINT=http://host.openshell.internal:8080",
      "OPENSHELL_SANDBOX_COMMAND=sleep infinity",
      "OPENSHELL_SSH_SOCKET_PATH=/run/openshell/ssh.sock",
      "OPENSHELL_SUPERVISOR_TOKEN=tok",
      "OPENSHELL_LOG_LEVEL=debug",
    ]);
  });

  it("template image, labels, CPU and memory limits, runtime, TLS files", () => {
    const spec = buildContainerSpec(
      sandbox(
        {},
        {
          template: {
            image: "debian:12",
            labels: { team: "a", "openshell.ai/sandbox-id": "forged" },
            resources: { cpuLimit: "1500m", memoryLimit: "512Mi" },
          },
        },
      ),
      { ...OPTIONS, tlsDir: "/state/tls", runtime: "runsc" },
    );
    expect(spec.Image).toBe("debian:12");
    expect(spec.Labels).toMatchObject({ team: "a", "openshell.ai/sandbox-id": "0b3c-id" });
    expect(spec.HostConfig).toMatchObject({
      NanoCpus: 1_500_000_000,
      Memory: 512 * 2 ** 20,
      MemorySwap: 512 * 2 ** 20,
      Runtime: "runsc",
    });
    expect(spec.HostConfig?.Mounts).toContainEqual({
      Type: "bind",
      Source: "/state/tls",
      Target: "/etc/openshell-tls/client",
      ReadOnly: true,
    });
    expect(spec.Env).toEqual(
      expect.arrayContaining([
        "OPENSHELL_TLS_CA=/etc/openshell-tls/client/ca.crt",
        "OPENSHELL_TLS_CERT=/etc/openshell-tls/client/tls.crt",
        "OPENSHELL_TLS_KEY=/etc/openshell-tls/client/tls.key",
      ]),
    );
  });
});

describe("validateSandbox", () => {
  it("refuses names that are no hostname, GPUs and limits that are no quantity", () => {
    expect(() => validateSandbox(sandbox({ name: "Bad_Name" }))).toThrow(
      /not usable as a container hostname/,
    );
    expect(() => validateSandbox(sandbox({}, { gpu: true }))).toThrow(/does not offer GPUs/);
    expect(() => validateSandbox(sandbox({}, { template: { resources: { memoryLimit: "lots" } } }))).toThrow(
      /memory limit 'lots'/,
    );
    expect(() => validateSandbox(sandbox({}, { template: { resources: { cpuLimit: "2x" } } }))).toThrow(
      /cpu limit '2x'/,
    );
    expect(validateSandbox(sandbox()).name).toBe("my-box");
  });
});
