// `npm run bundle`: one minified ES module per page into dist/, reproducibly (no timestamps, no source paths).
import { build } from "esbuild";

const pages = {
  "widget.js": "src/widget/loader.ts",
  "widget-app.js": "src/widget/app.ts",
  "demo.js": "src/widget/demo.ts",
};

for (const [out, entry] of Object.entries(pages)) {
  await build({
    entryPoints: [entry],
    outfile: `dist/${out}`,
    bundle: true,
    minify: true,
    format: out === "widget.js" ? "iife" : "esm",
    target: "es2022",
    legalComments: "none",
    charset: "utf8",
    logLevel: "warning",
  });
}
