export { type GatewayConfig, parseGatewayCommand } from "./config/gateway-config.js";
export { Gateway } from "./gateway.js";
