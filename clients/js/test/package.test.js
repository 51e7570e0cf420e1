// The package as published: `npm pack` ships the module and its types, and the types match
// how the module is used (checked by the TypeScript compiler from package-lock.json).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");

test("npm pack ships the module, its types, the README and nothing else", () => {
  const [packed] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: pkg, encoding: "utf8" }));
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, ["README.md", "package.json", "src/index.d.ts", "src/index.js"]);
  assert.equal(packed.name, "@agent-bridge/client");
});

test("the type declarations compile against a typical use (tsc --strict)", () => {
  const tsc = join(pkg, "node_modules", "typescript", "bin", "tsc");
  assert.ok(existsSync(tsc), "typescript is missing: run `npm ci` in clients/js (scripts/test.sh does)");
  execFileSync(process.execPath, [tsc, "-p", join(pkg, "test", "tsconfig.json")], { cwd: pkg, encoding: "utf8" });
});
