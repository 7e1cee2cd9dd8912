import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxForwardCommand = defineCommand({
  path: "sandbox forward",
  description: "forward a local port to the same port inside the sandbox (until Ctrl-C, or -d)",
  arguments: {
    name: argument.required("sandbox name", { complete: "sandboxes" }),
    port: argument.required("[BIND:]PORT, e.g. 8000 or 127.0.0.1:8000", { complete: "none" }),
  },
  options: {
    background: option.flag(
      "-d, --background",
      "keep forwarding in the background (stop with: openshell forward stop)",
    ),
  },
});
