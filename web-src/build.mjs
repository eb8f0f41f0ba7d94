// Builds shared/runtime/web/static/vendor/ from the pinned npm packages (package-lock.json):
//   npm ci && node build.mjs
// vendor.js     entry.js bundled by esbuild (ES module, minified, for browsers)
// uPlot.min.css the plot's stylesheet
// LICENSES.txt  the licence of every package in the production dependency tree
// BUILD.json    sha256 of the build inputs and of each output: tests/web/test_bundle.py checks
//               that the committed bundle is current (inputs unchanged since it was built,
//               outputs unedited) without network.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, "..", "shared", "runtime", "web", "static", "vendor");
export const INPUTS = ["package.json", "package-lock.json", "entry.js", "build.mjs"];

const sha256 = (data) => createHash("sha256").update(data).digest("hex");

// mqtt.js's browser bundle carries a `process` shim whose nextTick is setTimeout(fn, 0): every
// packet write waits for a timer (clamped to >= 4 ms once timers nest), which made a gamepad
// change take ~5 ms longer to leave the page than a Python client's. Node runs nextTick
// callbacks before any other I/O, i.e. as microtasks: the shims (three in mqtt 5.16) are made to do the same.
const NEXT_TICK = /(\.length===1&&!\w+&&)setTimeout\((\w+),0\)/g;
// and process/browser.js's runTimeout(drainQueue), which nextTick uses
const RUN_TIMEOUT = /if\((\w+)===setTimeout\)return setTimeout\((\w+),0\);/g;
const microtaskNextTick = {
  name: "mqtt-next-tick",
  setup(b) {
    b.onLoad({ filter: /mqtt[\\/]dist[\\/]mqtt\.esm\.js$/ }, (args) => {
      const text = readFileSync(args.path, "utf8");
      const found = (text.match(NEXT_TICK) || []).length;
      const runTimeout = (text.match(RUN_TIMEOUT) || []).length;
      if (!found || !runTimeout) {
        throw new Error(`mqtt.esm.js: process.nextTick shims not found (${found}, ${runTimeout})`);
      }
      const contents = text.replace(NEXT_TICK, "$1queueMicrotask($2)")
        .replace(RUN_TIMEOUT, "if($1===setTimeout)return queueMicrotask($2);");
      return { contents, loader: "js" };
    });
  },
};

mkdirSync(out, { recursive: true });
await build({
  plugins: [microtaskNextTick],
  entryPoints: [join(here, "entry.js")],
  outfile: join(out, "vendor.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  legalComments: "none", // the full licence texts are in LICENSES.txt
  logLevel: "warning",
});
copyFileSync(join(here, "node_modules", "uplot", "dist", "uPlot.min.css"), join(out, "uPlot.min.css"));

// Licences: every package npm would install without dev dependencies.
const tree = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: here })
  .toString().trim().split("\n").filter((p) => p !== here).sort();
const parts = [];
for (const dir of tree) {
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((name) => /^(licen[cs]e|copying)/i.test(name));
  const text = file ? readFileSync(join(dir, file), "utf8").trim() : `License: ${meta.license}`;
  parts.push(`== ${meta.name} ${meta.version} (${meta.license}) ==\n\n${text}\n`);
}
writeFileSync(join(out, "LICENSES.txt"),
  "Licences of the JavaScript packages bundled into vendor.js (web-src/package-lock.json).\n\n" +
  parts.join("\n"));

const record = { inputs: {}, outputs: {} };
for (const name of INPUTS) record.inputs[name] = sha256(readFileSync(join(here, name)));
for (const name of ["vendor.js", "uPlot.min.css", "LICENSES.txt"]) {
  record.outputs[name] = sha256(readFileSync(join(out, name)));
}
writeFileSync(join(out, "BUILD.json"), JSON.stringify(record, null, 2) + "\n");
console.log(`built ${relative(process.cwd(), out) || "."}`);
