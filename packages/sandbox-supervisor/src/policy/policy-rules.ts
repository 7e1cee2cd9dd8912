/**
 * What the supervisor uses of @openshell/policy, loaded with a dynamic import on the first sync:
 * the package's one entry also holds the YAML reader and writer, whose start-up cost would
 * otherwise be paid before the SSH server listens (the cold start under TCG is measured).
 */
export { deterministicPolicyHash, enrichBaselinePaths } from "@openshell/policy";
export { createNetworkDecisions } from "../network/network-decisions.js";
export { discoverPolicy, imagePathExists } from "./policy-discovery.js";
export { policyProblems } from "./policy-validation.js";
