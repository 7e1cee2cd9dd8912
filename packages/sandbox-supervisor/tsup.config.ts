import { dirname, join } from "node:path";
import { deflateRawSync } from "node:zlib";
import type { Options } from "tsup";
import { binaryBundle } from "../../tsup.binary.js";

type EsbuildPlugin = NonNullable<Options["esbuildPlugins"]>[number];

/** What the embedded part takes from the bundle instead of carrying its own copy. */
const SHARED_PACKAGES = ["@bufbuild/protobuf", "@openshell/proto", "@openshell/core"];

/**
 * `src/policy/policy-rules.ts` (@openshell/policy with its YAML library: ~300 KB of code) is built
 * on its own, deflated and embedded in the bundle as one base64 string, compiled on the first
 * policy sync: the bundle's `src/policy/policy-rules-loader.ts` is replaced by a module whose
 * `loadPolicyRules()` does that. It is imported statically, so the packages it shares keep their
 * tree-shaking (a dynamically imported module makes esbuild wrap and keep all of them). Inline code costs every cold start its parse even when it never runs (+15–20 ms CPU
 * to SSH:LISTEN on the host, ~14× that under TCG); a string costs only its scan. The VM image
 * carries one file, so a chunk beside the bundle is not an option. The embedded part uses the
 * bundle's protobuf runtime, generated protos and core (the exact names it imports are passed in):
 * a second copy would boot its own descriptors and pino on the first sync and make two
 * `OpenShellError` classes.
 */
const embeddedPolicyRules: EsbuildPlugin = {
  name: "embedded-policy-rules",
  setup(build) {
    // The path stays relative: esbuild names the module in the bundle by it, and an absolute one
    // would make the bundle (and the VM runtime keyed by it) differ per checkout.
    build.onResolve({ filter: /\/policy-rules-loader\.js$/ }, (args) => ({
      path: "policy-rules.ts",
      namespace: "embedded-policy-rules",
      pluginData: { file: join(args.resolveDir, dirname(args.path), "policy-rules.ts") },
    }));
    build.onLoad({ filter: /.*/, namespace: "embedded-policy-rules" }, async (args) => {
      const file = (args.pluginData as { file: string }).file;
      const common = {
        entryPoints: [file],
        bundle: true,
        platform: "node" as const,
        target: "node24",
        external: SHARED_PACKAGES,
        legalComments: "none" as const,
        write: false,
        metafile: true,
      };
      // An ESM build names what the part imports from the shared packages.
      const esm = await build.esbuild.build({ ...common, format: "esm" });
      const esmOutput = esm.outputFiles?.[0];
      if (!esmOutput) throw new Error(`building ${file} produced no output`);
      const imports = sharedImports(esmOutput.text);
      const cjs = await build.esbuild.build({ ...common, format: "cjs", minify: true });
      const cjsOutput = cjs.outputFiles?.[0];
      if (!cjsOutput) throw new Error(`building ${file} produced no output`);
      const packed = deflateRawSync(cjsOutput.contents, { level: 9 }).toString("base64");

      const lines = [
        `import { createRequire } from "node:module";`,
        `import { inflateRawSync } from "node:zlib";`,
      ];
      const shared: string[] = [];
      [...imports].forEach(([pkg, names], index) => {
        lines.push(
          `import { ${names.map((name) => `${name} as s${index}_${name}`).join(", ")} } from "${pkg}";`,
        );
        shared.push(`  "${pkg}": { ${names.map((name) => `${name}: s${index}_${name}`).join(", ")} },`);
      });
      lines.push(
        `const shared = {\n${shared.join("\n")}\n};`,
        `const packed = ${JSON.stringify(packed)};`,
        // Evaluated once, as import() would be (a VM template's supervisor loads it before it waits).
        `let loaded;`,
        `export async function loadPolicyRules() {`,
        `  if (loaded) return loaded;`,
        `  const nodeRequire = createRequire(import.meta.url);`,
        `  const { runInThisContext } = nodeRequire("node:vm");`,
        `  const source = inflateRawSync(Buffer.from(packed, "base64")).toString("utf8");`,
        `  const chunk = { exports: {} };`,
        `  runInThisContext("(function (module, exports, require) {" + source + "\\n})", {`,
        `    filename: "openshell-sandbox/policy-rules.cjs",`,
        `  })(chunk, chunk.exports, (id) => shared[id] ?? nodeRequire(id));`,
        `  loaded = chunk.exports;`,
        `  return loaded;`,
        `}`,
      );
      return {
        loader: "js",
        resolveDir: dirname(file),
        watchFiles: Object.keys(esm.metafile?.inputs ?? {}),
        contents: `${lines.join("\n")}\n`,
      };
    });
  },
};

/** The names an esbuild ESM output imports from each shared package (`import { a, b as c } from "p"`). */
function sharedImports(code: string): Map<string, string[]> {
  const found = new Map<string, Set<string>>();
  for (const match of code.matchAll(/^import\s+(.+?)\s+from\s+"([^"]+)";$/gms)) {
    const [, clause = "", pkg = ""] = match;
    if (!SHARED_PACKAGES.includes(pkg)) continue;
    const named = /^\{([^}]*)\}$/s.exec(clause.trim());
    if (!named?.[1])
      throw new Error(`the embedded policy part imports ${pkg} as '${clause}': name what it uses`);
    const names = found.get(pkg) ?? new Set<string>();
    for (const part of named[1].split(",")) {
      const name = part.trim().split(/\s+as\s+/)[0];
      if (name) names.add(name);
    }
    found.set(pkg, names);
  }
  return new Map([...found].map(([pkg, names]) => [pkg, [...names].sort()]));
}

// ssh2 (optional crypto binding, cpu-features) and node-pty are native addons.
const base = binaryBundle({
  name: "openshell-sandbox",
  native: ["ssh2", "node-pty", "cpu-features"],
}) as Options;

export default {
  ...base,
  esbuildPlugins: [embeddedPolicyRules, ...(base.esbuildPlugins ?? [])],
} satisfies Options;
