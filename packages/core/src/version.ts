/** The one version string of every OpenShell binary; OPENSHELL_BUILD_VERSION is replaced at bundle time. */
export const OPENSHELL_VERSION: string = process.env.OPENSHELL_BUILD_VERSION ?? "0.1.0";
