import { binaryBundle } from "../../tsup.binary.js";

// node22: the published CLI also runs on the previous LTS.
// Each command is a chunk of its own, so `openshell --version` loads none of the RPC stack.
// ssh2 (dockerode's docker-modem uses it for ssh:// Docker hosts) carries native and wasm parts
// that do not survive bundling; it stays a real dependency.
export default binaryBundle({
  name: "openshell",
  target: "node22",
  splitting: true,
  native: ["ssh2", "cpu-features"],
});
