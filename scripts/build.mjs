// Bundles the CLI (and, as they land, the language server and extension) with esbuild.
// `vscode` is provided by the editor and `onnxruntime-node` ships a native binary: both stay external.
import { copyFileSync } from 'node:fs';
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['vscode', 'onnxruntime-node'],
  logLevel: 'warning',
};

await build({ ...common, entryPoints: ['cli/main.ts'], outfile: 'dist/cli.js' });

// The VS Code extension and its model worker (a forked process, so models never run on the extension host's thread).
await build({ ...common, entryPoints: ['extension/main.ts'], outfile: 'dist/extension.js' });
await build({ ...common, entryPoints: ['extension/worker.ts'], outfile: 'dist/worker.js' });

// The webviews: one browser bundle and its stylesheet, plus the codicon font, all served from dist/webviews
// (the panels' only localResourceRoot).
await build({
  bundle: true,
  platform: 'browser',
  target: 'chrome120',
  format: 'iife',
  sourcemap: true,
  minify: true,
  logLevel: 'warning',
  entryPoints: { main: 'webviews/main.ts' },
  outdir: 'dist/webviews',
});
await build({ bundle: true, logLevel: 'warning', entryPoints: { main: 'webviews/style.css' }, outdir: 'dist/webviews' });
for (const f of ['codicon.css', 'codicon.ttf']) copyFileSync(`node_modules/@vscode/codicons/dist/${f}`, `dist/webviews/${f}`);

// `scalpel review`: Monaco's diff editor and its worker, inlined by cli/commands/review.ts into one HTML file.
await build({
  bundle: true,
  platform: 'browser',
  target: 'chrome120',
  format: 'iife',
  minify: true,
  logLevel: 'error',
  loader: { '.ttf': 'dataurl' },
  entryPoints: { page: 'review/page.mjs', worker: 'node_modules/monaco-editor/esm/vs/editor/editor.worker.js' },
  outdir: 'dist/review',
});
