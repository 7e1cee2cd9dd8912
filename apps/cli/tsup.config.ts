import { binaryBundle } from "../../tsup.binary.js";

// node22: the published CLI also runs on the previous LTS.
// Each command is a chunk of its own, so `openshell --version` loads none of the RPC stack.
export default binaryBundle({ name: "openshell", target: "node22", splitting: true });
