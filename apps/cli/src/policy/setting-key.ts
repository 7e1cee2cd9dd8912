import { OpenShellError } from "@openshell/core";
import { POLICY_SETTING_KEY, settingForKey, settingKeys } from "@openshell/policy";

/** `--key` of `settings set/delete`: given, registered, and not the global policy's own key. */
export function requireSettingKey(key: string | undefined, verb: "set" | "delete"): string {
  if (key === undefined || key.trim() === "")
    throw new OpenShellError(
      "invalid_argument",
      `--key is required: one of ${settingKeys().join(", ")} (see: openshell settings ${verb} --help)`,
    );
  const trimmed = key.trim();
  if (trimmed === POLICY_SETTING_KEY)
    throw new OpenShellError(
      "invalid_argument",
      "'policy' is managed by the policy commands: openshell policy set --global / openshell policy delete --global",
    );
  if (!settingForKey(trimmed))
    throw new OpenShellError(
      "invalid_argument",
      `unknown setting key '${trimmed}'. Allowed keys: ${settingKeys().join(", ")}`,
    );
  return trimmed;
}

/** "global" or "sandbox 'x'", for messages. */
export function settingScopeText(global: boolean, sandbox: string): string {
  return global ? "global: every sandbox" : `sandbox '${sandbox}'`;
}
