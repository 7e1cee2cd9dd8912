import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Example policies the tests share (the policy package's and e2e's, through the subpath
 * `@openshell/policy/test-fixtures`), read from `test-fixtures/*.yaml`: one copy of each text.
 */
const FIXTURES_DIR = join(import.meta.dirname, "..", "test-fixtures");

/** Upstream's complete example policy (spec §4.4). */
export const EXAMPLE_POLICY_YAML = readFileSync(join(FIXTURES_DIR, "upstream-example.yaml"), "utf8");

/** Every field of the schema set at least once. */
export const EVERY_FIELD_POLICY_YAML = readFileSync(join(FIXTURES_DIR, "every-field.yaml"), "utf8");
