// Packages the extension as a linux-x64 VSIX with @vscode/vsce (run after `npm run build`). The allow-list
// .vscodeignore keeps it to the bundles, the webview assets and onnxruntime-node's linux-x64 CPU binary.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { version } = JSON.parse(readFileSync('package.json', 'utf8'));
const out = process.env.SCALPEL_VSIX ?? `scalpel-${version}-linux-x64.vsix`;
const vsce = require.resolve('@vscode/vsce/vsce');
execFileSync(process.execPath, [vsce, 'package', '--target', 'linux-x64', '--out', out, '--readme-path', 'extension/README.md', '--allow-missing-repository', '--skip-license'], { stdio: 'inherit' });
console.log(`${out}: ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB`);
