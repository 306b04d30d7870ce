/**
 * Components: the catalog as a searchable, sortable table that renders only the rows in view (a
 * catalog holds thousands of components), a detail card with top-activating contexts, and
 * "insert selector into spec".
 */
import { LitElement, css, html, nothing } from 'lit';
// lit's styleMap sets a style attribute on first render, which the CSP blocks; this sets CSSOM properties.
import { stylePropertyMap } from '@vscode-elements/elements/dist/includes/style-property-map.js';
import type { CatalogView } from '../extension/protocol.js';
import { saveUi, savedUi, vscode } from './vscode.js';

type Row = CatalogView['components'][number];
type SortKey = 'key' | 'label' | 'module' | 'selectivity' | 'norm' | `tag:${string}`;

const ROW = 24;
const OVERSCAN = 8;

export class ComponentsView extends LitElement {
  static override properties = { data: { attribute: false }, query: { state: true }, sort: { state: true }, descending: { state: true }, selected: { state: true }, scrollTop: { state: true } };
  declare data?: CatalogView;
  declare query: string;
  declare sort: SortKey;
  declare descending: boolean;
  declare selected?: string;
  declare scrollTop: number;
  private viewport = 480;

  constructor() {
    super();
    this.query = savedUi('query', '');
    // By size: selectivity alone ranks components that barely fire anywhere first.
    this.sort = savedUi<SortKey>('sort', 'norm');
    this.descending = savedUi('descending', true);
    this.selected = savedUi<string | undefined>('selected', undefined);
    this.scrollTop = 0;
  }

  static override styles = css`
    :host { display: flex; flex-direction: column; height: 100vh; box-sizing: border-box; padding: 8px 16px; color: var(--vscode-foreground); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); }
    .top { display: flex; gap: 8px; align-items: center; }
    .body { display: flex; flex-wrap: wrap; gap: 16px; flex: 1; min-height: 0; margin-top: 8px; }
    .table { flex: 2 1 420px; display: flex; flex-direction: column; min-width: 0; max-height: 100%; overflow-x: auto; }
    .scroller { flex: 1; overflow-y: auto; position: relative; }
    .tr { display: grid; height: 24px; align-items: center; cursor: pointer; white-space: nowrap; }
    .tr > span { overflow: hidden; text-overflow: ellipsis; padding: 0 4px; }
    .th { font-weight: bold; border-bottom: 1px solid var(--vscode-editorWidget-border, #8884); cursor: pointer; }
    .tr.sel { background: var(--vscode-list-activeSelectionBackground); color: var(--vscode-list-activeSelectionForeground); }
    .tr:not(.th):hover { background: var(--vscode-list-hoverBackground); }
    .num { text-align: right; }
    .card { flex: 1 1 240px; max-height: 100%; overflow-y: auto; border-left: 1px solid var(--vscode-editorWidget-border, #8884); padding-left: 12px; }
    .ctx { font-family: var(--vscode-editor-font-family); white-space: pre-wrap; margin: 4px 0; }
    mark { background: var(--vscode-editor-findMatchHighlightBackground, #fd4); color: inherit; }
    .muted { opacity: 0.7; }
  `;

  private rows(): Row[] {
    const d = this.data;
    if (!d) return [];
    const q = this.query.trim().toLowerCase();
    const rows = q ? d.components.filter((c) => c.key.toLowerCase().includes(q) || (c.label ?? '').toLowerCase().includes(q)) : [...d.components];
    const value = (c: Row): number | string => {
      if (this.sort.startsWith('tag:')) return c.activation[this.sort.slice(4)] ?? -Infinity;
      if (this.sort === 'selectivity') return c.selectivity?.value ?? -Infinity;
      if (this.sort === 'norm') return c.norm ?? -Infinity;
      return c[this.sort as 'key' | 'label' | 'module'] ?? '';
    };
    rows.sort((a, b) => {
      const x = value(a), y = value(b);
      const r = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return this.descending ? -r : r;
    });
    return rows;
  }

  private setSort(k: SortKey): void {
    this.descending = this.sort === k ? !this.descending : k !== 'key' && k !== 'label' && k !== 'module';
    this.sort = k;
    saveUi({ sort: this.sort, descending: this.descending });
  }

  private select(key: string): void {
    this.selected = key;
    saveUi({ selected: key });
  }

  override firstUpdated(): void {
    const s = this.renderRoot.querySelector<HTMLElement>('.scroller');
    if (s) this.viewport = s.clientHeight || this.viewport;
  }

  override render() {
    const d = this.data;
    if (!d) return html`<p class="muted">Loading the component catalog…</p>`;
    const rows = this.rows();
    const cols: { k: SortKey; name: string; num?: boolean }[] = [
      { k: 'key', name: 'key' },
      { k: 'label', name: 'label' },
      { k: 'module', name: 'module' },
      ...d.tags.map((t) => ({ k: `tag:${t}` as SortKey, name: t, num: true })),
      { k: 'selectivity', name: 'selectivity', num: true },
      { k: 'norm', name: 'norm', num: true },
    ];
    const grid = stylePropertyMap({ gridTemplateColumns: ['minmax(9em, 1.2fr)', 'minmax(8em, 2fr)', 'minmax(7em, 1fr)', ...d.tags.map(() => '4em'), '6.5em', '4em'].join(' ') });
    const first = Math.max(0, Math.floor(this.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((this.scrollTop + this.viewport) / ROW) + OVERSCAN);
    const sel = d.components.find((c) => c.key === this.selected);
    return html`
      <div class="top">
        <vscode-textfield id="search" placeholder="Search keys and labels" .value=${this.query}
          @input=${(e: Event) => { this.query = (e.target as HTMLInputElement).value; saveUi({ query: this.query }); }}>
          <vscode-icon slot="content-before" name="search"></vscode-icon>
        </vscode-textfield>
        <span id="count" class="muted">${rows.length} of ${d.components.length} components</span>
      </div>
      <div class="body">
        <div class="table">
          <div class="tr th" .style=${grid}>${cols.map((c) => html`<span class=${c.num ? 'num' : ''} data-sort=${c.k} @click=${() => this.setSort(c.k)}>${c.name}${this.sort === c.k ? (this.descending ? ' ▾' : ' ▴') : ''}</span>`)}</div>
          <div class="scroller" @scroll=${(e: Event) => (this.scrollTop = (e.target as HTMLElement).scrollTop)}>
            <div .style=${stylePropertyMap({ height: `${rows.length * ROW}px`, position: 'relative' })}>
              <div .style=${stylePropertyMap({ position: 'absolute', top: `${first * ROW}px`, left: '0', right: '0' })}>
                ${rows.slice(first, last).map((c) => html`<div class="tr ${c.key === this.selected ? 'sel' : ''}" .style=${grid} data-key=${c.key} @click=${() => this.select(c.key)}>
                  <span>${c.key}</span><span>${c.label ?? ''}</span><span>${c.module}</span>
                  ${d.tags.map((t) => html`<span class="num">${c.activation[t]?.toFixed(3) ?? ''}</span>`)}
                  <span class="num">${c.selectivity ? `${c.selectivity.value.toFixed(1)}× ${c.selectivity.tag}` : ''}</span>
                  <span class="num">${c.norm?.toFixed(2) ?? ''}</span>
                </div>`)}
              </div>
            </div>
          </div>
        </div>
        <div class="card" id="detail">${sel ? this.card(sel) : html`<p class="muted">Select a component.</p>`}</div>
      </div>`;
  }

  private card(c: Row) {
    return html`
      <h3><code>${c.key}</code></h3>
      <p>${c.label ?? html`<span class="muted">unlabelled</span>`}</p>
      <vscode-button id="insert" @click=${() => vscode.postMessage({ type: 'insertSelector', key: c.key })}><vscode-icon name="insert" slot="content-before"></vscode-icon>Insert selector into spec</vscode-button>
      ${c.norm !== undefined ? html`<p class="muted">norm ${c.norm.toFixed(3)}</p>` : nothing}
      <h4>Top-activating contexts</h4>
      ${c.contexts.length
        ? c.contexts.map((x) => html`<div class="ctx"><span class="muted">${x.tag} ${x.activation.toFixed(2)}</span> ${x.text.split(/(⟦[^⟧]*⟧)/).map((part) => (part.startsWith('⟦') ? html`<mark>${part.slice(1, -1)}</mark>` : part))}</div>`)
        : html`<p class="muted">none recorded in the catalog</p>`}`;
  }
}
customElements.define('scalpel-components', ComponentsView);
