import { defineConfig } from "tsup";

// Native addons (ssh2's optional crypto binding, node-pty) stay real dependencies beside the bundle.
const nativeDependencies = ["ssh2", "node-pty", "cpu-features"];

export default defineConfig({
  entry: { "openshell-sandbox": "src/main.ts" },
  format: "esm",
  platform: "node",
  target: "node24",
  bundle: true,
  noExternal: [new RegExp(`^(?!(${nativeDependencies.join("|")})$).*`)],
  external: nativeDependencies,
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  clean: true,
  splitting: false,
  sourcemap: false,
});
