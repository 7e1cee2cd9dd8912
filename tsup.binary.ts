import { readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { defineConfig, type Options } from "tsup";

type EsbuildPlugin = NonNullable<Options["esbuildPlugins"]>[number];

/**
 * Node built-ins reached through `require` instead of ESM `import`: an ESM import of a built-in
 * builds a module facade that reads every export, and reading `node:http`'s lazy exports loads
 * Node's whole internal undici (fetch, WebSocket, proxy agents) — tens of milliseconds on a host,
 * ~14× that inside a TCG sandbox VM.
 */
const builtinsThroughRequire: EsbuildPlugin = {
  name: "builtins-through-require",
  setup(build) {
    const names = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
    build.onResolve({ filter: /^(node:)?[a-z0-9_/]+$/ }, (args) => {
      if (!names.has(args.path)) return undefined;
      if (args.namespace === "builtin-require") return { path: args.path, external: true };
      return { path: args.path, namespace: "builtin-require" };
    });
    build.onLoad({ filter: /.*/, namespace: "builtin-require" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: "js",
    }));
  },
};

/** The one version of every package (root package.json; `node scripts/set-version.mjs X` moves them all). */
const VERSION = (
  JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { version: string }
).version;

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
  /** V8/Node flags in the shebang (`env -S`); launchers that run the bundle under a Node read them there. */
  nodeFlags?: string[];
}) {
  const native = options.native ?? [];
  const shebang = [
    "#!/usr/bin/env",
    ...(options.nodeFlags?.length ? ["-S", "node", ...options.nodeFlags] : ["node"]),
  ];
  const config: Options = {
    entry: { [options.name]: "src/main.ts" },
    format: "esm",
    platform: "node",
    target: options.target ?? "node24",
    bundle: true,
    noExternal: native.length === 0 ? [/.*/] : [new RegExp(`^(?!(${native.join("|")})$).*`)],
    external: native,
    banner: {
      js: `${shebang.join(" ")}\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);`,
    },
    clean: true,
    // Read by @openshell/core's OPENSHELL_VERSION: --version, Health, the supervisor's hello.
    define: { "process.env.OPENSHELL_BUILD_VERSION": JSON.stringify(VERSION) },
    // Splitting turns dynamic import() into chunks loaded on demand (the CLI's fast start).
    splitting: options.splitting ?? false,
    sourcemap: false,
    removeNodeProtocol: false, // else tsup marks node:* external before the plugin sees it
    esbuildPlugins: [builtinsThroughRequire],
  };
  return defineConfig(config);
}
