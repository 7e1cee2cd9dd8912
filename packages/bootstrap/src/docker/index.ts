/** The Docker deployment of a gateway (loads dockerode, and ssh2 under it). */
export {
  type DockerStartOptions,
  destroyDockerGateway,
  dockerGatewayState,
  ensureDockerGateway,
  stopDockerGateway,
} from "./docker-gateway.js";
