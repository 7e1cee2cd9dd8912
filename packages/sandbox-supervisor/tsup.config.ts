import { binaryBundle } from "../../tsup.binary.js";

// ssh2 (optional crypto binding, cpu-features) and node-pty are native addons.
export default binaryBundle({ name: "openshell-sandbox", native: ["ssh2", "node-pty", "cpu-features"] });
