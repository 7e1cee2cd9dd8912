import { binaryBundle } from "../../tsup.binary.js";

// better-sqlite3 and ssh2 (with its optional cpu-features) are native addons.
export default binaryBundle({
  name: "openshell-gateway",
  native: ["better-sqlite3", "ssh2", "cpu-features"],
});
