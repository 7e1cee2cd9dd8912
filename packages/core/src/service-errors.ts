import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { toConnectError } from "./errors.js";

/**
 * Wraps every method of a service implementation so that whatever it throws (OpenShellError, plain
 * Error) reaches the wire as the right gRPC status, for unary and streaming methods alike.
 */
export function mapServiceErrors<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
): Partial<ServiceImpl<S>> {
  const wrapped: Record<string, unknown> = {};
  const methods = impl as Record<string, (...args: unknown[]) => unknown>;
  for (const method of service.methods) {
    const fn = methods[method.localName];
    if (!fn) continue;
    const streamsOut = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
    wrapped[method.localName] = streamsOut
      ? async function* (...args: unknown[]) {
          try {
            yield* fn.apply(impl, args) as AsyncIterable<unknown>;
          } catch (error) {
            throw toConnectError(error);
          }
        }
      : async (...args: unknown[]) => {
          try {
            return await fn.apply(impl, args);
          } catch (error) {
            throw toConnectError(error);
          }
        };
  }
  return wrapped as Partial<ServiceImpl<S>>;
}
