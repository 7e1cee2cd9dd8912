import { OpenShellError } from "@openshell/core";
import type { datamodel } from "@openshell/proto";

/** Upstream's provider limits (grpc/provider.rs). */
const ProviderLimits = {
  maxNameBytes: 253,
  maxTypeBytes: 64,
  maxCredentials: 32,
  maxConfig: 64,
  maxKeyBytes: 256,
  maxValueBytes: 8192,
} as const;

const REDACTED = "REDACTED";

export function validateProvider(provider: datamodel.Provider): void {
  if (!provider.name) throw new OpenShellError("invalid_argument", "provider.name is required");
  if (Buffer.byteLength(provider.name) > ProviderLimits.maxNameBytes) {
    throw new OpenShellError(
      "invalid_argument",
      `provider.name exceeds ${ProviderLimits.maxNameBytes} bytes`,
    );
  }
  if (!provider.type) throw new OpenShellError("invalid_argument", "provider.type is required");
  if (Buffer.byteLength(provider.type) > ProviderLimits.maxTypeBytes) {
    throw new OpenShellError(
      "invalid_argument",
      `provider.type exceeds ${ProviderLimits.maxTypeBytes} bytes`,
    );
  }
  validateMap("credentials", provider.credentials, ProviderLimits.maxCredentials);
  validateMap("config", provider.config, ProviderLimits.maxConfig);
}

function validateMap(field: string, entries: Record<string, string>, maxEntries: number): void {
  const keys = Object.keys(entries);
  if (keys.length > maxEntries) {
    throw new OpenShellError(
      "invalid_argument",
      `provider.${field} has ${keys.length} entries (limit ${maxEntries})`,
    );
  }
  for (const key of keys) {
    if (!key) throw new OpenShellError("invalid_argument", `provider.${field} has an empty key`);
    if (Buffer.byteLength(key) > ProviderLimits.maxKeyBytes) {
      throw new OpenShellError(
        "invalid_argument",
        `provider.${field} key '${key.slice(0, 32)}…' exceeds ${ProviderLimits.maxKeyBytes} bytes`,
      );
    }
    if (Buffer.byteLength(entries[key] as string) > ProviderLimits.maxValueBytes) {
      throw new OpenShellError(
        "invalid_argument",
        `provider.${field}['${key}'] exceeds ${ProviderLimits.maxValueBytes} bytes`,
      );
    }
  }
}

/** Merge rule of UpdateProvider: an empty map changes nothing, entries upsert, "" deletes the key. */
export function mergeEntries(
  current: Record<string, string>,
  incoming: Record<string, string>,
): Record<string, string> {
  const merged = { ...current };
  for (const [key, value] of Object.entries(incoming)) {
    if (value === "") delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

/** What the API returns: credential values never leave the gateway. */
export function redacted(provider: datamodel.Provider): datamodel.Provider {
  return {
    ...provider,
    credentials: Object.fromEntries(Object.keys(provider.credentials).map((key) => [key, REDACTED])),
  };
}
