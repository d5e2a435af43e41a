// `npm run build`'s last step: the pages into dist/, reproducibly (no timestamps, no source paths). The HTML and
// CSS in src/pages/ are copied as they are; the scripts are bundled and minified by esbuild. The widget's chat,
// the agent console, the knowledge editor and the dashboard share their common code (the gRPC-Web client, the
// generated messages, the shared helpers) in chunks, so none carries a copy of another's code.
import { copyFile, readdir, writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { build } from "esbuild";

const common = { bundle: true, minify: true, target: "es2022", legalComments: "none", charset: "utf8", logLevel: "warning" };

for (const file of await readdir("src/pages")) await copyFile(`src/pages/${file}`, `dist/${file}`);

// The loader runs on the shop's page as a classic script: no modules, nothing shared.
await build({ ...common, entryPoints: ["src/widget/loader.ts"], outfile: "dist/widget.js", format: "iife" });
await build({ ...common, entryPoints: ["src/widget/demo.ts"], outfile: "dist/demo.js", format: "esm" });
// Code shared by only some of the pages goes into a chunk of its own; each chunk is named for the pages that load it
// ("shared.js" when all do), not by a hash, so the names loket embeds stay the same from build to build.
const pages = {
  "widget-app": "src/widget/app.ts",
  agent: "src/console/app.ts",
  editor: "src/editor/app.ts",
  dashboard: "src/dashboard/app.ts",
};
const result = await build({
  ...common,
  entryPoints: pages,
  outdir: "dist",
  format: "esm",
  splitting: true,
  chunkNames: "shared-[hash]",
  metafile: true,
  write: false,
});
const outputs = new Map(result.outputFiles.map((file) => [basename(file.path), file.text]));
const names = new Map();
for (const chunk of [...outputs.keys()].filter((name) => name.startsWith("shared-"))) {
  const users = Object.keys(pages).filter((page) => outputs.get(`${page}.js`).includes(`"./${chunk}"`));
  names.set(chunk, users.length === Object.keys(pages).length ? "shared.js" : `shared-${users.join("-")}.js`);
}
for (const [name, text] of outputs) {
  let renamed = text;
  for (const [chunk, stable] of names) renamed = renamed.replaceAll(`"./${chunk}"`, `"./${stable}"`);
  await writeFile(`dist/${names.get(name) ?? name}`, renamed);
}
