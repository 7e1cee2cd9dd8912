export * from "./driver-client.js";
export * from "./driver-main.js";
export * from "./driver-watch-hub.js";
export * from "./serve-driver.js";
