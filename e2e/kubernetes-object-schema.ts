import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";

/**
 * Checks a Kubernetes object against the API's own schema as @kubernetes/client-node publishes it
 * (models generated from the Kubernetes OpenAPI document): every field must exist in its type
 * (a misspelt field is an error, as `kubectl apply --validate=strict` would make it), values have
 * the declared types, and fields the schema requires are present (read from the models' type
 * declarations, where a required property has no `?`). Returns the problems, empty when valid.
 */
export function checkKubernetesObject(object: unknown): string[] {
  const problems: string[] = [];
  if (!isPlainObject(object)) return ["not an object"];
  const { apiVersion, kind } = object;
  if (typeof apiVersion !== "string" || typeof kind !== "string") return ["no apiVersion or kind"];
  const model = modelName(apiVersion, kind);
  if (!modelOf(model)) return [`${apiVersion} ${kind}: no such type in the Kubernetes API (${model})`];
  checkValue(object, model, kind, problems);
  return problems;
}

/** `apps/v1` + `StatefulSet` -> `V1StatefulSet`; `v1beta1` -> `V1beta1`. */
function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split("/").pop() ?? "";
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

interface Model {
  attributeTypeMap: Attribute[];
}

function modelOf(type: string): Model | undefined {
  const candidate = (k8s as unknown as Record<string, unknown>)[type];
  if (typeof candidate !== "function") return undefined;
  const map = (candidate as unknown as Partial<Model>).attributeTypeMap;
  return Array.isArray(map) ? (candidate as unknown as Model) : undefined;
}

const MODELS_DIR = join(
  dirname(fileURLToPath(import.meta.resolve("@kubernetes/client-node"))),
  "gen",
  "models",
);
const requiredCache = new Map<string, Set<string>>();

/** Properties declared without `?` in the generated model (the OpenAPI `required` list). */
function requiredFields(type: string): Set<string> {
  let fields = requiredCache.get(type);
  if (!fields) {
    const declaration = readFileSync(join(MODELS_DIR, `${type}.d.ts`), "utf8");
    fields = new Set([...declaration.matchAll(/^\s+'([^']+)': /gm)].map((match) => match[1] as string));
    requiredCache.set(type, fields);
  }
  return fields;
}

function checkValue(value: unknown, type: string, path: string, problems: string[]): void {
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (value === null) {
    problems.push(`${path}: null`);
  } else if (array) {
    if (!Array.isArray(value)) problems.push(`${path}: expected a list, got ${describe(value)}`);
    else {
      for (const [i, item] of value.entries())
        checkValue(item, array[1] as string, `${path}[${i}]`, problems);
    }
  } else if (map) {
    if (!isPlainObject(value)) problems.push(`${path}: expected a map, got ${describe(value)}`);
    else
      for (const [key, item] of Object.entries(value))
        checkValue(item, map[1] as string, `${path}.${key}`, problems);
  } else if (type === "string" || type === "Date") {
    if (typeof value !== "string") problems.push(`${path}: expected a string, got ${describe(value)}`);
  } else if (type === "number") {
    if (typeof value !== "number") problems.push(`${path}: expected a number, got ${describe(value)}`);
  } else if (type === "boolean") {
    if (typeof value !== "boolean") problems.push(`${path}: expected true or false, got ${describe(value)}`);
  } else if (type === "IntOrString") {
    if (typeof value !== "string" && !Number.isInteger(value)) {
      problems.push(`${path}: expected an integer or a string, got ${describe(value)}`);
    }
  } else if (type !== "any") {
    checkModel(value, type, path, problems);
  }
}

function checkModel(value: unknown, type: string, path: string, problems: string[]): void {
  const model = modelOf(type);
  if (!model) {
    problems.push(`${path}: no schema for type ${type}`);
    return;
  }
  if (!isPlainObject(value)) {
    problems.push(`${path}: expected an object (${type}), got ${describe(value)}`);
    return;
  }
  const attributes = new Map(model.attributeTypeMap.map((attribute) => [attribute.baseName, attribute]));
  for (const [key, item] of Object.entries(value)) {
    const attribute = attributes.get(key);
    if (!attribute) {
      problems.push(`${path}.${key}: unknown field (${type} has no such field)`);
      continue;
    }
    checkValue(item, attribute.type, `${path}.${key}`, problems);
    if (
      attribute.type === "number" &&
      /^int/.test(attribute.format) &&
      typeof item === "number" &&
      !Number.isInteger(item)
    ) {
      problems.push(`${path}.${key}: expected an integer, got ${describe(item)}`);
    }
  }
  for (const field of requiredFields(type)) {
    const attribute = model.attributeTypeMap.find((candidate) => candidate.name === field);
    if (attribute && !(attribute.baseName in value)) problems.push(`${path}.${attribute.baseName}: required`);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return value === null
    ? "null"
    : Array.isArray(value)
      ? "a list"
      : `${typeof value} ${JSON.stringify(value)}`;
}
