// Copies the chat page's third-party modules from node_modules (installed from
// package-lock.json by `npm ci`) into vendor/, where the bridge embeds them (routes/ui.rs).
// `node vendor.mjs --check` fails when vendor/ differs from what the lock file installs;
// scripts/test.sh runs it, so the committed copies are the locked versions, unchanged.
//
// - marked: Markdown to HTML (its ES module build);
// - DOMPurify: sanitises that HTML before it reaches the DOM (agent text is untrusted);
// - highlight.js: the core and a few languages common in agents' answers (ES builds).
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "vendor");

export const LANGUAGES = [
  "bash", "css", "diff", "go", "ini", "javascript", "json", "plaintext", "python", "rust",
  "shell", "sql", "typescript", "xml", "yaml",
];

const FILES = [
  ["marked/lib/marked.esm.js", "marked.esm.js"],
  ["marked/LICENSE", "licenses/marked.txt"],
  ["dompurify/dist/purify.es.mjs", "purify.es.mjs"],
  ["dompurify/LICENSE", "licenses/dompurify.txt"],
  ["@highlightjs/cdn-assets/es/core.min.js", "highlight/core.min.js"],
  ["@highlightjs/cdn-assets/LICENSE", "licenses/highlight.js.txt"],
  ...LANGUAGES.map((l) => [`@highlightjs/cdn-assets/es/languages/${l}.min.js`, `highlight/languages/${l}.min.js`]),
];

const check = process.argv.includes("--check");
let stale = 0;
for (const [from, to] of FILES) {
  const source = readFileSync(join(modules, from));
  const target = join(vendor, to);
  if (check) {
    if (!existsSync(target) || !source.equals(readFileSync(target))) {
      console.error(`vendor/${to} differs from node_modules/${from}: run \`npm ci && npm run vendor\` in bridge/ui`);
      stale += 1;
    }
  } else {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, source);
  }
}
if (stale) process.exit(1);
console.log(check ? `vendor/: ${FILES.length} files match package-lock.json` : `vendor/: ${FILES.length} files copied`);
