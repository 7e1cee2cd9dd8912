import type { KnipConfig } from "knip";

/**
 * Unused files, exports and dependencies fail the lint step (`scripts/test.sh`). Entry points come
 * from each package's `exports` and `bin` (through its tsup config), the vitest projects and the
 * ones listed here.
 */
const config: KnipConfig = {
  // System tools the tests and the VM driver run; not npm packages.
  ignoreBinaries: ["dmesg", "fish", "ip", "openssl", "qemu-img", "qemu-system-x86_64", "script", "umount"],
  workspaces: {
    ".": {
      // scripts/lib/native-closure.mjs is run by scripts/setup.sh.
      entry: ["scripts/**/*.{ts,mjs}"],
    },
    bench: {
      // Each benchmark is run by path (`bash bench/run.sh relay-bench.ts`); the .mjs helpers are
      // spawned by path from relay-bench.ts.
      entry: ["*-bench.ts", "*.mjs"],
      // bench/run.sh bundles each benchmark with bench/node_modules/.bin/esbuild.
      ignoreDependencies: ["esbuild"],
    },
    "apps/cli": {
      // Not imported: a native dependency kept beside the bundle (tsup `native`), which dockerode's
      // docker-modem requires at run time for ssh:// Docker hosts.
      ignoreDependencies: ["ssh2"],
    },
  },
};

export default config;
