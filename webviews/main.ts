/**
 * Entry of the webview bundle: one page per panel kind (`<scalpel-app view=…>`). The extension posts
 * data; the last message is kept with setState so a restored panel redraws without a model run.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-icon/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-ring/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import type { ToWebview, ViewKind } from '../extension/protocol.js';
import { ComponentsView } from './components.js';
import { GeometryView } from './geometry.js';
import { PreviewView } from './preview.js';
import { ReviewView } from './review.js';
import { vscode } from './vscode.js';

const VIEW_ELEMENTS: Record<ViewKind, () => PreviewView | ComponentsView | ReviewView | GeometryView> = {
  preview: () => new PreviewView(),
  components: () => new ComponentsView(),
  review: () => new ReviewView(),
  geometry: () => new GeometryView(),
};

class App extends HTMLElement {
  private view?: PreviewView | ComponentsView | ReviewView | GeometryView;

  connectedCallback(): void {
    const kind = this.getAttribute('view') ?? '';
    this.view = (Object.hasOwn(VIEW_ELEMENTS, kind) ? VIEW_ELEMENTS[kind as ViewKind] : VIEW_ELEMENTS.preview)();
    this.append(this.view);
    const saved = vscode.getState()?.last;
    if (saved) this.receive(saved);
    window.addEventListener('message', (e: MessageEvent<ToWebview>) => {
      this.receive(e.data);
      if (e.data.type !== 'busy') vscode.setState({ ...vscode.getState(), last: e.data });
    });
    vscode.postMessage({ type: 'ready' });
  }

  private receive(m: ToWebview): void {
    const v = this.view!;
    if (m.type === 'busy') {
      if (v instanceof PreviewView) v.busy = m.message;
    } else if (m.type === 'error') {
      if (v instanceof PreviewView) v.busy = m.message;
    } else if (m.type === 'preview' && v instanceof PreviewView) {
      v.busy = undefined;
      v.data = m.data;
    } else if (m.type === 'catalog' && v instanceof ComponentsView) {
      v.data = m.data;
    } else if (m.type === 'review' && v instanceof ReviewView) {
      v.data = m.data;
    } else if (m.type === 'geometry' && v instanceof GeometryView) {
      v.data = m.data;
    }
  }
}
customElements.define('scalpel-app', App);
