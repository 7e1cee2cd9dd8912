import { argument, defineCommand, option } from "../../command-spec/define-command.js";

export const sandboxForkCommand = defineCommand({
  path: "sandbox fork",
  description: "copy a ready sandbox (disk and memory) into a new one and wait until it is ready",
  arguments: {
    name: argument.required("the sandbox to copy (it must be Ready)", { complete: "sandboxes" }),
  },
  options: {
    name: option.string("--name <new-name>", "name of the new sandbox (default: generated)", {
      complete: "none",
    }),
    wait: option.negatable("--no-wait", "return once the copy is accepted, without waiting for Ready"),
  },
  helpAfter: `
The source pauses for a moment while its disk and memory are copied, then runs on. The copy gets
its own identity and starts its processes anew; it keeps the source's image, environment,
resources, providers, settings and the policy the source has now. Needs the VM driver
(openshell gateway start --driver vm). Waits for Ready like create (OPENSHELL_PROVISION_TIMEOUT,
default 300 s), showing each step, then prints the new sandbox's name.`,
});
