export { parseGatewayCommand, type GatewayConfig } from "./config/gateway-config.js";
export { Gateway } from "./gateway.js";
