/** The supervisor's version. */
export const SUPERVISOR_VERSION: string = process.env.OPENSHELL_BUILD_VERSION ?? "0.1.0";
