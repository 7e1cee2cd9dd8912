import { binaryBundle } from "../../tsup.binary.js";

export default binaryBundle({ name: "openshell-driver-kubernetes" });
