import { binaryBundle } from "../../tsup.binary.js";

// ssh2 (dockerode's docker-modem uses it for ssh:// Docker hosts) carries native and wasm parts
// that do not survive bundling; it stays a real dependency, as in the CLI.
export default binaryBundle({ name: "openshell-driver-docker", native: ["ssh2", "cpu-features"] });
