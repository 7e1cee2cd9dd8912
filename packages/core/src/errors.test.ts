import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorCodes, OpenShellError, toConnectError } from "./errors.js";

describe("ErrorCodes", () => {
  it("maps each machine code to its gRPC status", () => {
    expect(ErrorCodes).toEqual({
      invalid_argument: Code.InvalidArgument,
      not_found: Code.NotFound,
      already_exists: Code.AlreadyExists,
      failed_precondition: Code.FailedPrecondition,
      resource_exhausted: Code.ResourceExhausted,
      unavailable: Code.Unavailable,
      deadline_exceeded: Code.DeadlineExceeded,
      unauthenticated: Code.Unauthenticated,
      permission_denied: Code.PermissionDenied,
      aborted: Code.Aborted,
      unimplemented: Code.Unimplemented,
      canceled: Code.Canceled,
      internal: Code.Internal,
      config_invalid: Code.InvalidArgument,
    });
  });
});

describe("OpenShellError", () => {
  it("carries its code, message, cause and Connect code", () => {
    const cause = new Error("disk full");
    const error = new OpenShellError("resource_exhausted", "no space left for the sandbox", { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("OpenShellError");
    expect(error.code).toBe("resource_exhausted");
    expect(error.message).toBe("no space left for the sandbox");
    expect(error.cause).toBe(cause);
    expect(error.connectCode).toBe(Code.ResourceExhausted);
  });

  it("becomes a ConnectError with the mapped status and its own message", () => {
    const wire = new OpenShellError("config_invalid", "--port must be a number").toConnectError();
    expect(wire).toBeInstanceOf(ConnectError);
    expect(wire.code).toBe(Code.InvalidArgument);
    expect(wire.rawMessage).toBe("--port must be a number");
  });
});

describe("OpenShellError.from", () => {
  it("returns an OpenShellError unchanged", () => {
    const error = new OpenShellError("not_found", "sandbox 'x' not found");
    expect(OpenShellError.from(error, "unavailable")).toBe(error);
  });

  it("keeps a ConnectError's status as the code and its message without the status prefix", () => {
    const connect = new ConnectError("sandbox 'x' not found", Code.NotFound);
    const error = OpenShellError.from(connect);
    expect(error.code).toBe("not_found");
    expect(error.message).toBe("sandbox 'x' not found");
    expect(error.cause).toBe(connect);
  });

  it("maps every Connect status it has a code for back to that code (InvalidArgument to invalid_argument)", () => {
    for (const [name, code] of Object.entries(ErrorCodes)) {
      if (name === "config_invalid") continue;
      expect(OpenShellError.from(new ConnectError("m", code)).code).toBe(name);
    }
    expect(OpenShellError.from(new ConnectError("m", Code.InvalidArgument)).code).toBe("invalid_argument");
  });

  it("maps Connect statuses without a code to internal, whatever the fallback", () => {
    for (const code of [Code.Unknown, Code.OutOfRange, Code.DataLoss]) {
      expect(OpenShellError.from(new ConnectError("m", code), "unavailable").code).toBe("internal");
    }
  });

  it("wraps a plain Error with the fallback code (internal by default)", () => {
    const plain = new Error("socket hang up");
    const wrapped = OpenShellError.from(plain);
    expect(wrapped.code).toBe("internal");
    expect(wrapped.message).toBe("socket hang up");
    expect(wrapped.cause).toBe(plain);
    expect(OpenShellError.from(plain, "unavailable").code).toBe("unavailable");
  });

  it("wraps thrown non-errors by their string form", () => {
    expect(OpenShellError.from("boom").message).toBe("boom");
    expect(OpenShellError.from(42, "aborted")).toMatchObject({ code: "aborted", message: "42" });
    expect(OpenShellError.from(undefined).message).toBe("undefined");
  });
});

describe("toConnectError", () => {
  it("passes a ConnectError through unchanged", () => {
    const connect = new ConnectError("gone", Code.Unavailable);
    expect(toConnectError(connect)).toBe(connect);
  });

  it("sends an OpenShellError with its mapped status", () => {
    const wire = toConnectError(new OpenShellError("permission_denied", "token lacks scope"));
    expect(wire.code).toBe(Code.PermissionDenied);
    expect(wire.rawMessage).toBe("token lacks scope");
  });

  it("sends unknown errors as INTERNAL with their message only, never the stack", () => {
    const thrown = new TypeError("cannot read properties of undefined");
    expect(thrown.stack).toContain("errors.test.ts");
    const wire = toConnectError(thrown);
    expect(wire.code).toBe(Code.Internal);
    expect(wire.rawMessage).toBe("cannot read properties of undefined");
    expect(wire.message).not.toContain("errors.test.ts");
    expect(wire.metadata.keys().next().done).toBe(true);
    expect(wire.details).toEqual([]);
  });

  it("sends thrown non-errors as INTERNAL", () => {
    const wire = toConnectError({ toString: () => "odd value" });
    expect(wire.code).toBe(Code.Internal);
    expect(wire.rawMessage).toBe("odd value");
  });
});
