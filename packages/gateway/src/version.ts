/** The gateway's version, reported by Health and /readyz. Replaced at bundle time. */
export const GATEWAY_VERSION: string = process.env.OPENSHELL_BUILD_VERSION ?? "0.1.0";
