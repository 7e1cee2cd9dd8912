/** One problem found in a policy, located by its path in the YAML schema (`filesystem_policy.read_only[2]`). */
export type PolicyIssue = {
  path: ReadonlyArray<string | number>;
  message: string;
};

/** `network_policies.github.endpoints[0].ports`; the empty path is the document itself. */
export function formatPolicyPath(path: ReadonlyArray<string | number>): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? segment : `.${segment}`;
  }
  return text === "" ? "policy" : text;
}
