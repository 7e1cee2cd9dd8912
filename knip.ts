import type { KnipConfig } from "knip";

/**
 * Unused files, exports and dependencies fail the lint step (`scripts/test.sh`). Entry points come
 * from each package's `exports` and `bin` (through its tsup config), the vitest projects and the
 * ones listed here.
 */
const config: KnipConfig = {
  // System tools the tests and the VM driver run; not npm packages.
  ignoreBinaries: [
    "dmesg",
    "fish",
    "ip",
    "mmdebstrap",
    "openssl",
    "qemu-img",
    "qemu-system-x86_64",
    "script",
    "umount",
  ],
  workspaces: {
    ".": {
      // scripts/*.mjs are run by path (set-version.mjs by hand and by pack-release.sh).
      entry: ["scripts/**/*.{ts,mjs}"],
    },
    bench: {
      // Each benchmark (and boot-stress.ts, a hang hunter) is run by path (`bash bench/run.sh
      // relay-bench.ts`); the .mjs helpers are spawned by path from relay-bench.ts.
      entry: ["*-bench.ts", "boot-stress.ts", "*.mjs"],
      // bench/run.sh bundles each benchmark with bench/node_modules/.bin/esbuild.
      ignoreDependencies: ["esbuild"],
    },
    "apps/cli": {
      // Not imported: a native dependency kept beside the bundle (tsup `native`), which dockerode's
      // docker-modem requires at run time for ssh:// Docker hosts. The gateway and driver packages
      // are found by package resolution at run time (bootstrap's gateway-binaries.ts; the VM
      // driver's KVM probe is also imported, for `gateway start --driver auto`), the test driver
      // only in the workspace.
      ignoreDependencies: [
        "ssh2",
        "@openshell/gateway",
        "@openshell/driver-docker",
        "@openshell/driver-kubernetes",
        "@openshell/driver-test",
      ],
    },
    "packages/driver-docker": {
      // Not imported: kept beside the bundle (tsup `native`) for dockerode's ssh:// Docker hosts.
      // The supervisor package's staging/stage-supervisor-bin.sh makes the directory mounted into
      // containers (run by the CLI, which resolves the package from this one).
      ignoreDependencies: ["ssh2", "@openshell/sandbox-supervisor"],
    },
    "packages/driver-vm": {
      // Its supervisor bundle goes into the guest image (runtime/stage-vm-runtime.sh resolves it).
      ignoreDependencies: ["@openshell/sandbox-supervisor"],
    },
    "packages/sandbox-supervisor": {
      // staging/native-closure.mjs is run by path (stage-supervisor-bin.sh, stage-vm-runtime.sh,
      // build-gateway-image.sh).
      entry: ["staging/*.mjs", "src/main.ts"],
    },
  },
};

export default config;
