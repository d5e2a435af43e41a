// `npm run build`'s last step: the pages into dist/, reproducibly (no timestamps, no source paths). The HTML and
// CSS in src/pages/ are copied as they are; the scripts are bundled and minified by esbuild. The widget's chat,
// the agent console and the knowledge editor share their common code (the gRPC-Web client, the generated
// messages, the shared helpers) in chunks, so none carries a copy of another's code.
import { copyFile, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { build } from "esbuild";

const common = { bundle: true, minify: true, target: "es2022", legalComments: "none", charset: "utf8", logLevel: "warning" };

for (const file of await readdir("src/pages")) await copyFile(`src/pages/${file}`, `dist/${file}`);

// The loader runs on the shop's page as a classic script: no modules, nothing shared.
await build({ ...common, entryPoints: ["src/widget/loader.ts"], outfile: "dist/widget.js", format: "iife" });
await build({ ...common, entryPoints: ["src/widget/demo.ts"], outfile: "dist/demo.js", format: "esm" });
const pages = { "widget-app": "src/widget/app.ts", agent: "src/console/app.ts", editor: "src/editor/app.ts" };
const { metafile } = await build({
  ...common,
  entryPoints: pages,
  outdir: "dist",
  format: "esm",
  splitting: true,
  chunkNames: "chunk-[hash]",
  metafile: true,
});

// esbuild makes one chunk per set of pages sharing code and names it by a hash. loket embeds its files by fixed
// names (src/web/assets.rs), so each chunk is renamed for the pages that load it: `shared.js` for all of them,
// `shared-agent-editor.js` for the console and the editor only, and so on.
const outputs = Object.entries(metafile.outputs);
const entryOf = Object.fromEntries(
  outputs.filter(([, o]) => o.entryPoint).map(([path, o]) => [path, Object.keys(pages).find((p) => pages[p] === o.entryPoint)]),
);
const names = {};
for (const [chunk] of outputs.filter(([path, o]) => !o.entryPoint && path.endsWith(".js"))) {
  // The pages importing it: each page imports every chunk it loads; chunks importing chunks do not count.
  const users = outputs
    .filter(([path, o]) => entryOf[path] && o.imports.some((i) => i.path === chunk))
    .map(([path]) => entryOf[path]);
  const all = Object.keys(pages).every((page) => users.includes(page));
  names[chunk] = all ? "dist/shared.js" : `dist/shared-${users.sort().join("-")}.js`;
}
for (const [chunk, name] of Object.entries(names)) await rename(chunk, name);
for (const path of outputs.map(([path]) => names[path] ?? path).filter((path) => path.endsWith(".js"))) {
  let code = await readFile(path, "utf8");
  for (const [chunk, name] of Object.entries(names)) code = code.replaceAll(chunk.replace("dist/", "./"), name.replace("dist/", "./"));
  await writeFile(path, code);
}
