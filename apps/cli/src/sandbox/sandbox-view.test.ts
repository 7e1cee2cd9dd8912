import { create } from "@bufbuild/protobuf";
import { SandboxSchema } from "@openshell/proto";
import { describe, expect, it } from "vitest";
import { storageSummary } from "./sandbox-view.js";

describe("storageSummary", () => {
  it("gives the disk and, when there is one, the memory snapshot; nothing for drivers that do not report", () => {
    expect(storageSummary(create(SandboxSchema, { name: "a" }))).toBeUndefined();
    const running = create(SandboxSchema, {
      status: { storage: { diskBytes: 3n * 2n ** 20n + 2n ** 19n, memorySnapshotBytes: 0n } },
    });
    expect(storageSummary(running)).toBe("disk 3.5 MiB on the gateway's host");
    const stopped = create(SandboxSchema, {
      status: { storage: { diskBytes: 1500n * 2n ** 20n, memorySnapshotBytes: 225n * 2n ** 20n } },
    });
    expect(storageSummary(stopped)).toBe("disk 1500 MiB, memory snapshot 225 MiB on the gateway's host");
  });
});
