// Bundles the CLI (and, as they land, the language server and extension) with esbuild.
// `vscode` is provided by the editor and `onnxruntime-node` ships a native binary: both stay external.
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
