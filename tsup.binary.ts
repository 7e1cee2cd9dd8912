import { defineConfig, type Options } from "tsup";

/**
 * The one way every binary is bundled: a single ESM file with a shebang, everything inlined so it
 * starts fast, except native addons, which stay real dependencies beside the bundle. The banner
 * gives bundled CommonJS code a `require`.
 */
export function binaryBundle(options: {
  name: string;
  target?: string;
  native?: string[];
  splitting?: boolean;
}) {
  const native = options.native ?? [];
  const config: Options = {
    entry: { [options.name]: "src/main.ts" },
    format: "esm",
    platform: "node",
    target: options.target ?? "node24",
    bundle: true,
    noExternal: native.length === 0 ? [/.*/] : [new RegExp(`^(?!(${native.join("|")})$).*`)],
    external: native,
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    clean: true,
    // Splitting turns dynamic import() into chunks loaded on demand (the CLI's fast start).
    splitting: options.splitting ?? false,
    sourcemap: false,
  };
  return defineConfig(config);
}
