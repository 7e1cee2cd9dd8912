export * from "./config/supervisor-config.js";
export * from "./sandbox-supervisor.js";
export * from "./session/supervisor-session.js";
