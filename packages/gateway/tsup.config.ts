import { defineConfig } from "tsup";

export default defineConfig({
  entry: { "openshell-gateway": "src/main.ts" },
  format: "esm",
  platform: "node",
  target: "node24",
  bundle: true,
  // Native addon stays a real dependency; everything else is bundled so the binary starts fast.
  noExternal: [/^(?!(better-sqlite3|ssh2|cpu-features)$).*/],
  external: ["better-sqlite3", "ssh2", "cpu-features"],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  clean: true,
  splitting: false,
  sourcemap: false,
});
