import { binaryBundle } from "../../tsup.binary.js";

// better-sqlite3 and ssh2 (with its optional cpu-features) are native addons.
export default binaryBundle({
  name: "openshell-gateway",
  native: ["better-sqlite3", "ssh2", "cpu-features"],
  // V8 sizes the young generation from the host's memory (64 MiB semi-spaces on a 23 GiB host) and
  // keeps what it grew: most of the gateway's RSS per idle supervisor session (1157 → 251 KiB with
  // 100, h2c) and its growth over 10,000 relays (208 → 322 MiB; 113 → 120 MiB with 1 MiB), at no
  // measurable cost in CPU per relayed MiB (architecture/relays.md, issue 18).
  nodeFlags: ["--max-semi-space-size=1"],
});
