import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runDriverMain } from "@openshell/driver-sdk";
import { SupervisorProcesses, supervisorLaunchConfigFromEnv } from "./supervisor-processes.js";
import { TestDriver } from "./test-driver.js";

await runDriverMain({
  binary: "openshell-driver-test",
  extraFlags: {
    "delete-delay-ms": {
      type: "int",
      default: 200,
      min: 0,
      description: "how long a delete takes, to test the Deleting phase",
    },
  },
  parseExtra: (values) => ({ deleteDelayMs: values["delete-delay-ms"] }),
  create: async (common, extra) => {
    const launch = supervisorLaunchConfigFromEnv(process.env, common.stateDir);
    const driver = new TestDriver({
      stateDir: common.stateDir,
      deleteDelayMs: extra.deleteDelayMs,
      supervisors: launch ? new SupervisorProcesses(launch) : undefined,
      withoutStopStart: process.env.OPENSHELL_TEST_DRIVER_NO_STOP_START === "1",
      withFork: process.env.OPENSHELL_TEST_DRIVER_FORK === "1",
    });
    await driver.load();
    // Tests find the driver process here to crash it on purpose.
    writeFileSync(join(common.stateDir, "driver.pid"), String(process.pid));
    return { impl: driver.impl() };
  },
});
