import { defineConfig } from "tsup";

export default defineConfig({
  entry: { "openshell-driver-vm": "src/main.ts" },
  format: "esm",
  platform: "node",
  target: "node24",
  bundle: true,
  noExternal: [/.*/],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  clean: true,
  splitting: false,
  sourcemap: false,
});
