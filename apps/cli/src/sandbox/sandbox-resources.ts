import type { JsonObject } from "@bufbuild/protobuf";
import { OpenShellError, parseByteQuantity } from "@openshell/core";

const SIZE_HINT = "use a size such as 512Mi or 2Gi (suffixes Ki, Mi, Gi, Ti or k, M, G, T; none for bytes)";

/**
 * `--cpus N --memory SIZE --disk SIZE` → the template's resources, Kubernetes-style: the same
 * values as requests and limits (`cpu`, `memory`, `ephemeral-storage` for the disk). Undefined when
 * none is given (the driver's defaults apply). Sizes keep the user's spelling once checked.
 */
export function parseSandboxResources(options: {
  cpus?: string | undefined;
  memory?: string | undefined;
  disk?: string | undefined;
}): JsonObject | undefined {
  const values: JsonObject = {};
  if (options.cpus !== undefined) {
    if (!/^[1-9]\d{0,3}$/.test(options.cpus))
      throw new OpenShellError(
        "invalid_argument",
        `bad --cpus '${options.cpus}': use a whole number of CPUs such as 2`,
      );
    values.cpu = options.cpus;
  }
  if (options.memory !== undefined) values.memory = size(options.memory, "--memory");
  if (options.disk !== undefined) values["ephemeral-storage"] = size(options.disk, "--disk");
  if (Object.keys(values).length === 0) return undefined;
  return { requests: { ...values }, limits: { ...values } };
}

function size(text: string, flag: string): string {
  const bytes = parseByteQuantity(text);
  if (bytes === undefined || bytes <= 0)
    throw new OpenShellError("invalid_argument", `bad ${flag} '${text}': ${SIZE_HINT}`);
  return text.trim();
}
