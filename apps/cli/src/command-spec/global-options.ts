import { option, type ValuesOf } from "./define-command.js";

/** The options every command takes (before or after its name), read from the root command. */
export const GLOBAL_OPTIONS = {
  gateway: option.string(
    "-g, --gateway <name>",
    "gateway to use (env OPENSHELL_GATEWAY; default: the active gateway)",
    { complete: "gateways" },
  ),
  gatewayEndpoint: option.string(
    "--gateway-endpoint <url>",
    "talk to this gateway URL directly (env OPENSHELL_GATEWAY_ENDPOINT)",
    { complete: "none" },
  ),
  output: option.choice("-o, --output <format>", "output format of list/get/status commands", [
    "text",
    "json",
  ]),
  verbose: option.count("-v, --verbose", "more detail, including stack traces on errors"),
};

/** `-g`, `--gateway-endpoint`, `-o text|json`, `-v` (a count), typed. */
export type GlobalOptions = ValuesOf<typeof GLOBAL_OPTIONS>;
