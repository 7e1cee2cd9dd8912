import { create } from "@bufbuild/protobuf";
import { compute } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { validateForVm } from "./sandbox-validation.js";

const GiB = 2 ** 30;
const defaults = { vcpus: 2, memMib: 1024 };
const capacity = { cpus: 4, memMib: 8192, diskFreeBytes: 50 * GiB, minDiskBytes: 2 * GiB };

function sandbox(spec: Parameters<typeof create<typeof compute.DriverSandboxSpecSchema>>[1]) {
  return create(compute.DriverSandboxSchema, { id: "i", name: "n", spec });
}

function withResources(values: Record<string, string>) {
  const raw = { limits: values, requests: values };
  return sandbox({
    template: {
      resources: { cpuLimit: values.cpu ?? "", memoryLimit: values.memory ?? "" },
      platformConfig: { resources_raw: raw },
    },
  });
}

const failure = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  return undefined;
};

describe("validateForVm", () => {
  it("takes cpu, memory and disk from the template's resources, the driver's defaults otherwise", () => {
    expect(validateForVm(sandbox({}), defaults, capacity)).toEqual({
      vcpus: 2,
      memMib: 1024,
      diskBytes: undefined,
    });
    expect(
      validateForVm(
        withResources({ cpu: "3", memory: "512Mi", "ephemeral-storage": "10Gi" }),
        defaults,
        capacity,
      ),
    ).toEqual({ vcpus: 3, memMib: 512, diskBytes: 10 * GiB });
    expect(validateForVm(withResources({ cpu: "1500m" }), defaults, capacity).vcpus).toBe(2);
  });

  it("refuses sizes beyond the host or below what a VM needs with INVALID_ARGUMENT", () => {
    expect(failure(() => validateForVm(withResources({ cpu: "8" }), defaults, capacity))).toEqual({
      code: "invalid_argument",
      message: "cpu 8 is more than this host has (4 CPUs)",
    });
    expect(failure(() => validateForVm(withResources({ memory: "64Gi" }), defaults, capacity))?.message).toBe(
      "memory 65536 MiB is more than this host has (8192 MiB)",
    );
    expect(
      failure(() => validateForVm(withResources({ memory: "64Mi" }), defaults, capacity))?.message,
    ).toContain("too small: a VM needs at least 256 MiB");
    expect(
      failure(() => validateForVm(withResources({ "ephemeral-storage": "1Gi" }), defaults, capacity))
        ?.message,
    ).toBe("disk 1 GiB is smaller than the sandbox image (2 GiB); ask for at least that");
    expect(
      failure(() => validateForVm(withResources({ "ephemeral-storage": "1Ti" }), defaults, capacity))
        ?.message,
    ).toBe("disk 1 TiB is more than the free space where sandbox disks live (50 GiB)");
    expect(failure(() => validateForVm(withResources({ memory: "lots" }), defaults, capacity))).toMatchObject(
      {
        code: "invalid_argument",
        message: 'resources memory "lots" is not a size: use a quantity such as 512Mi or 2Gi',
      },
    );
  });

  it("refuses resources and platform settings a VM cannot honour", () => {
    expect(
      failure(() => validateForVm(withResources({ "nvidia.com/gpu": "1" }), defaults, capacity)),
    ).toMatchObject({
      code: "failed_precondition",
      message: expect.stringContaining('do not support the resource "nvidia.com/gpu"'),
    });
    expect(
      failure(() =>
        validateForVm(sandbox({ template: { platformConfig: { runtime_class_name: "x" } } }), defaults),
      ),
    ).toEqual({
      code: "failed_precondition",
      message: "vm sandboxes do not support template.platform_config.runtime_class_name",
    });
  });

  it("refuses line breaks and NUL in environment values and invalid names, naming the variable", () => {
    for (const value of ["a\nb", "a\rb", "a\0b"])
      expect(failure(() => validateForVm(sandbox({ environment: { GREETING: value } }), defaults))).toEqual({
        code: "invalid_argument",
        message: "spec.environment value of GREETING contains NUL, CR or LF; values must be a single line",
      });
    expect(
      failure(() => validateForVm(sandbox({ template: { environment: { "1BAD": "x" } } }), defaults)),
    ).toEqual({
      code: "invalid_argument",
      message:
        "spec.template.environment key '1BAD' is invalid: use letters, digits and _ and do not start with a digit",
    });
    expect(
      failure(() => validateForVm(sandbox({ environment: { OK_1: "tabs\tand spaces" } }), defaults)),
    ).toBeUndefined();
  });
});
