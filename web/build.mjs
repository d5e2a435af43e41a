// `npm run build`'s last step: the pages into dist/, reproducibly (no timestamps, no source paths). The HTML and
// CSS in src/pages/ are copied as they are; the scripts are bundled and minified by esbuild. The widget's chat
// and the agent console share one chunk (the gRPC-Web client, the generated messages, the shared helpers), so
// neither carries a copy of the other's code.
import { copyFile, readdir } from "node:fs/promises";
import { build } from "esbuild";

const common = { bundle: true, minify: true, target: "es2022", legalComments: "none", charset: "utf8", logLevel: "warning" };

for (const file of await readdir("src/pages")) await copyFile(`src/pages/${file}`, `dist/${file}`);

// The loader runs on the shop's page as a classic script: no modules, nothing shared.
await build({ ...common, entryPoints: ["src/widget/loader.ts"], outfile: "dist/widget.js", format: "iife" });
await build({ ...common, entryPoints: ["src/widget/demo.ts"], outfile: "dist/demo.js", format: "esm" });
await build({
  ...common,
  entryPoints: { "widget-app": "src/widget/app.ts", agent: "src/console/app.ts" },
  outdir: "dist",
  format: "esm",
  splitting: true,
  chunkNames: "shared",
});
