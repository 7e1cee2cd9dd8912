/** The policy rules the config sync uses, loaded on first use. */
export type PolicyRules = typeof import("./policy-rules.js");

/**
 * Loads `policy-rules.ts`. The bundle replaces this module (tsup.config.ts) with one that compiles
 * an embedded copy, so that a cold start does not parse @openshell/policy and its YAML library.
 */
export const loadPolicyRules = (): Promise<PolicyRules> => import("./policy-rules.js");
