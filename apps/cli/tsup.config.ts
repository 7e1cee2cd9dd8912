import { binaryBundle } from "../../tsup.binary.js";

// node22: the published CLI also runs on the previous LTS.
export default binaryBundle({ name: "openshell", target: "node22" });
