/** The Docker deployment loads dockerode (and ssh2 under it): only commands that need it pay for it. */
export const dockerGateway = () => import("@openshell/bootstrap/docker");
