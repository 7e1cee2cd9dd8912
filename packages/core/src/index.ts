export * from "./async-queue.js";
export * from "./backoff.js";
export * from "./errors.js";
export * from "./logger.js";
export * from "./names.js";
export * from "./ocsf.js";
export * from "./serial-lock.js";
export * from "./service-errors.js";
