// The `scalpel review` page: Monaco's diff editor over the spec (base revision vs working copy).
// Bundled by scripts/build.mjs into dist/review/page.js (+ page.css); `scalpel review` inlines it, with the
// editor worker as a string started from a blob URL, so the page works from a single file with no network.
import * as monaco from 'monaco-editor/editor/editor.api.js';

const data = JSON.parse(document.getElementById('review-data').textContent);
self.MonacoEnvironment = {
  getWorker() {
    const code = document.getElementById('editor-worker').textContent;
    return new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
  },
};
const diff = monaco.editor.createDiffEditor(document.getElementById('spec-diff'), {
  readOnly: true,
  automaticLayout: true,
  renderSideBySide: true,
  minimap: { enabled: false },
  scrollBeyondLastLine: false,
  theme: window.matchMedia('(prefers-color-scheme: dark)').matches ? 'vs-dark' : 'vs',
});
diff.setModel({
  original: monaco.editor.createModel(data.spec.before, 'plaintext'),
  modified: monaco.editor.createModel(data.spec.after, 'plaintext'),
});
diff.onDidUpdateDiff(() => document.body.setAttribute('data-diff-ready', String(diff.getLineChanges()?.length ?? 0)));
