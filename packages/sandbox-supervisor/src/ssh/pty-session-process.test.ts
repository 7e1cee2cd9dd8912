import { OpenShellError } from "@openshell/core";
import { describe, expect, it } from "vitest";
import { loadNodePty } from "./pty-session-process.js";

/** A require whose node-pty is missing, as where npm skipped it (its build needs a compiler). */
const withoutNodePty = Object.assign(
  (id: string) => {
    throw Object.assign(new Error(`Cannot find module '${id}'\nRequire stack:\n- /opt/openshell/bin/x.js`), {
      code: "MODULE_NOT_FOUND",
    });
  },
  { resolve: () => "", cache: {}, extensions: {}, main: undefined },
) as unknown as NodeJS.Require;

describe("node-pty, loaded with the first terminal", () => {
  it("loads where it is installed", () => {
    expect(typeof loadNodePty().spawn).toBe("function");
  });

  it("missing: terminals are refused with what to do instead, not a bare module error", () => {
    let caught: unknown;
    try {
      loadNodePty(withoutNodePty);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OpenShellError);
    const error = caught as OpenShellError;
    expect(error.code).toBe("failed_precondition");
    expect(error.message).toContain("this sandbox has no terminals");
    expect(error.message).toContain("Cannot find module 'node-pty'");
    expect(error.message).not.toContain("Require stack");
    expect(error.message).toContain("openshell sandbox exec NAME -- CMD");
  });
});
