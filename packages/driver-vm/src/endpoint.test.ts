import { describe, expect, it } from "vitest";
import { guestEndpoint } from "./endpoint.js";

describe("guestEndpoint", () => {
  it("rewrites loopback to the host alias and keeps other hosts", () => {
    expect(guestEndpoint("http://127.0.0.1:8080")).toBe("http://host.openshell.internal:8080");
    expect(guestEndpoint("https://localhost:8443/")).toBe("https://host.openshell.internal:8443");
    expect(guestEndpoint("http://10.1.2.3:8080")).toBe("http://10.1.2.3:8080");
  });

  it("rejects unspecified and malformed endpoints with upstream's message", () => {
    expect(() => guestEndpoint("http://0.0.0.0:8080")).toThrow(
      "is not reachable from sandbox VMs; use a concrete host",
    );
    expect(() => guestEndpoint("gateway:8080")).toThrow("must be http:// or https://");
    expect(() => guestEndpoint("::nonsense")).toThrow("is not a URL");
  });
});
