import { binaryBundle } from "../../tsup.binary.js";

// better-sqlite3 and ssh2 (with its optional cpu-features) are native addons.
export default binaryBundle({
  name: "openshell-gateway",
  native: ["better-sqlite3", "ssh2", "cpu-features"],
  // V8 sizes the young generation from the host's memory (up to 64 MiB semi-spaces on a 23 GiB host)
  // and never gives it back: most of the gateway's RSS growth per supervisor session, and slower
  // relays (cache misses). 1 MiB semi-spaces: RSS per idle session 818 → 244 KiB, gateway CPU per
  // relayed MiB 6.2–6.8 → 3.1–3.6 ms (architecture/relays.md, issue 18).
  nodeFlags: ["--max-semi-space-size=1"],
});
