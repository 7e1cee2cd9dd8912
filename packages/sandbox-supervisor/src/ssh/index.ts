export { isForwardableEnvName, LOGIN_PATH } from "./login-environment.js";
export { isLoopbackAddress, isLoopbackHost } from "./loopback-destination.js";
export { type RunAsUser, resolveRunAsUser } from "./run-as-user.js";
export {
  DEFAULT_RUN_AS_USER,
  DEFAULT_WORKDIR,
  SandboxSshServer,
  type SandboxSshServerOptions,
} from "./sandbox-ssh-server.js";
