import { dirname, join } from "node:path";
import { deflateRawSync } from "node:zlib";
import type { Options } from "tsup";
import { binaryBundle } from "../../tsup.binary.js";

type EsbuildPlugin = NonNullable<Options["esbuildPlugins"]>[number];

/**
 * `src/policy/policy-rules.ts` (all of @openshell/policy, with its YAML library: ~370 KB of source)
 * is built on its own, deflated and embedded in the bundle as one base64 string, then compiled on
 * the first policy sync. Inline code costs a cold start its parse even when it never runs (+15–20 ms
 * CPU on the host, ~14× that under TCG); a string costs only its scan. The VM image carries one
 * file, so a chunk beside the bundle is not an option. The chunk has its own copies of the proto
 * runtime and core: messages cross as plain objects (protobuf-es matches them by type name).
 */
const embeddedPolicyRules: EsbuildPlugin = {
  name: "embedded-policy-rules",
  setup(build) {
    build.onResolve({ filter: /\/policy-rules\.js$/ }, (args) =>
      args.kind === "dynamic-import"
        ? { path: join(args.resolveDir, "policy-rules.ts"), namespace: "embedded-policy-rules" }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "embedded-policy-rules" }, async (args) => {
      const chunk = await build.esbuild.build({
        entryPoints: [args.path],
        bundle: true,
        platform: "node",
        format: "cjs",
        target: "node24",
        minify: true,
        legalComments: "none",
        write: false,
        metafile: true,
      });
      const [output] = chunk.outputFiles;
      if (!output) throw new Error(`building ${args.path} produced no output`);
      const packed = deflateRawSync(output.contents, { level: 9 }).toString("base64");
      return {
        loader: "js",
        resolveDir: dirname(args.path),
        watchFiles: Object.keys(chunk.metafile.inputs),
        contents: `const { inflateRawSync } = require("node:zlib");
const { runInThisContext } = require("node:vm");
const source = inflateRawSync(Buffer.from(${JSON.stringify(packed)}, "base64")).toString("utf8");
const chunk = { exports: {} };
runInThisContext("(function (module, exports, require) {" + source + "\\n})", {
  filename: "openshell-sandbox/policy-rules.cjs",
})(chunk, chunk.exports, require);
module.exports = chunk.exports;
`,
      };
    });
  },
};

// ssh2 (optional crypto binding, cpu-features) and node-pty are native addons.
const base = binaryBundle({
  name: "openshell-sandbox",
  native: ["ssh2", "node-pty", "cpu-features"],
}) as Options;

export default {
  ...base,
  esbuildPlugins: [embeddedPolicyRules, ...(base.esbuildPlugins ?? [])],
} satisfies Options;
