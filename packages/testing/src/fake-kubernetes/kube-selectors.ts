/**
 * Label and field selectors, and the JSON merge patch / JSON patch the fake API server applies
 * (tests only). Label selectors take the apiserver's syntax: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
 * `a in (x,y)`, `a notin (x)`; field selectors `path=value`, `path!=value` on dotted paths
 * (`metadata.name`, `involvedObject.kind`, `spec.nodeName`, `status.phase`).
 */
import { badRequest } from "./kube-status.js";

export type KubeObject = Record<string, unknown> & {
  metadata?: Record<string, unknown> & {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
    uid?: string;
    ownerReferences?: { uid: string; kind?: string; name?: string; controller?: boolean }[];
    finalizers?: string[];
    deletionTimestamp?: string;
  };
};

export type ObjectPredicate = (object: KubeObject) => boolean;

export function parseLabelSelector(selector: string | null): ObjectPredicate {
  if (!selector) return () => true;
  const terms = splitTerms(selector).map((term): ObjectPredicate => {
    const set = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (set) {
      const [, key, op, list] = set as unknown as [string, string, string, string];
      const values = new Set(list.split(",").map((value) => value.trim()));
      return (object) => {
        const value = object.metadata?.labels?.[key];
        return op === "in"
          ? value !== undefined && values.has(value)
          : value === undefined || !values.has(value);
      };
    }
    const eq = /^([^\s!=]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (eq) {
      const [, key, op, expected] = eq as unknown as [string, string, string, string];
      return (object) => {
        const value = object.metadata?.labels?.[key];
        return op === "!=" ? value !== expected : value === expected;
      };
    }
    const exists = /^(!?)([^\s!=(),]+)$/.exec(term);
    if (exists) {
      const [, negate, key] = exists as unknown as [string, string, string];
      return (object) => (object.metadata?.labels?.[key] !== undefined) !== (negate === "!");
    }
    throw badRequest(`unable to parse requirement: ${term}`);
  });
  return (object) => terms.every((term) => term(object));
}

export function parseFieldSelector(selector: string | null): ObjectPredicate {
  if (!selector) return () => true;
  const terms = selector.split(",").map((term): ObjectPredicate => {
    const match = /^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/.exec(term.trim());
    if (!match) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    const [, path, op, expected] = match as unknown as [string, string, string, string];
    return (object) => {
      const value = fieldValue(object, path);
      const text = value === undefined || value === null ? "" : String(value);
      return op === "!=" ? text !== expected : text === expected;
    };
  });
  return (object) => terms.every((term) => term(object));
}

/** Splits on commas outside parentheses (`a in (x,y),b` is two terms). */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = "";
  for (const char of selector) {
    if (char === "(") depth += 1;
    if (char === ")") depth -= 1;
    if (char === "," && depth === 0) {
      terms.push(current.trim());
      current = "";
    } else {
      current += char;
    }
  }
  if (current.trim()) terms.push(current.trim());
  return terms;
}

function fieldValue(object: unknown, path: string): unknown {
  let value: unknown = object;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** RFC 7386 JSON merge patch (also used for strategic merge patch: lists are replaced whole). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return structuredClone(patch);
  const result: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

interface JsonPatchOperation {
  op: "add" | "remove" | "replace" | "test" | "move" | "copy";
  path: string;
  value?: unknown;
  from?: string;
}

/** RFC 6902 JSON patch; a failed `test` or a missing path is a 422 as on the apiserver. */
export function jsonPatch(target: unknown, operations: unknown, fail: (why: string) => Error): unknown {
  if (!Array.isArray(operations)) throw badRequest("json patch body must be a JSON array of operations");
  let document = structuredClone(target);
  for (const operation of operations as JsonPatchOperation[]) {
    const path = parsePointer(operation.path);
    switch (operation.op) {
      case "add":
        document = setAt(document, path, structuredClone(operation.value), "add", fail);
        break;
      case "replace":
        getAt(document, path, fail);
        document = setAt(document, path, structuredClone(operation.value), "replace", fail);
        break;
      case "remove":
        getAt(document, path, fail);
        document = removeAt(document, path);
        break;
      case "test":
        if (JSON.stringify(getAt(document, path, fail)) !== JSON.stringify(operation.value)) {
          throw fail(`the test operation at ${operation.path} failed`);
        }
        break;
      case "copy":
      case "move": {
        const from = parsePointer(operation.from ?? "");
        const value = structuredClone(getAt(document, from, fail));
        if (operation.op === "move") document = removeAt(document, from);
        document = setAt(document, path, value, "add", fail);
        break;
      }
      default:
        throw badRequest(`unknown json patch operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  }
  return document;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function getAt(document: unknown, path: string[], fail: (why: string) => Error): unknown {
  let value = document;
  for (const part of path) {
    if (value === null || typeof value !== "object" || !(part in (value as object))) {
      throw fail(`missing path /${path.join("/")}`);
    }
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function setAt(
  document: unknown,
  path: string[],
  value: unknown,
  mode: "add" | "replace",
  fail: (why: string) => Error,
): unknown {
  if (path.length === 0) return value;
  const parent = getAt(document, path.slice(0, -1), fail);
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) {
    const index = last === "-" ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) throw fail(`bad array index ${last}`);
    if (mode === "add") parent.splice(index, 0, value);
    else parent[index] = value;
  } else if (parent !== null && typeof parent === "object") {
    (parent as Record<string, unknown>)[last] = value;
  } else {
    throw fail(`cannot set /${path.join("/")}`);
  }
  return document;
}

function removeAt(document: unknown, path: string[]): unknown {
  const parent = getAt(document, path.slice(0, -1), (why) => badRequest(why));
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete (parent as Record<string, unknown>)[last];
  return document;
}
