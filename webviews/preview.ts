/**
 * Edit Preview: Δloss per dataset as bars with the guards' thresholds (target vs off-target), a scale
 * sweep, a per-token Δloss heatmap over sample text, the selected components, and the checks.
 */
import { LitElement, css, html, nothing } from 'lit';
// lit's styleMap sets a style attribute on first render, which the CSP blocks; this sets CSSOM properties.
import { stylePropertyMap } from '@vscode-elements/elements/dist/includes/style-property-map.js';
import type { PreviewResult } from '../extension/protocol.js';
import { Chart, palette } from './charts.js';
import { checkStatus, checkStyles } from './checks.js';
import { fmt, saveUi, savedUi, vscode } from './vscode.js';

export class PreviewView extends LitElement {
  static override properties = { data: { attribute: false }, busy: {}, heatDataset: { state: true } };
  declare data?: PreviewResult;
  declare busy?: string;
  declare heatDataset?: string;
  private charts: Chart[] = [];

  static override styles = [checkStyles, css`
    :host { display: block; padding: 8px 16px; color: var(--vscode-foreground); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); }
    h2 { font-size: 1.1em; margin: 16px 0 6px; }
    .row { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
    .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
    .chart { position: relative; height: 240px; }
    table { border-collapse: collapse; }
    td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid var(--vscode-editorWidget-border, #8884); }
    td:first-child, th:first-child, #checks td { text-align: left; }
    .heat { font-family: var(--vscode-editor-font-family); white-space: pre-wrap; line-height: 1.6; }
    .heat span { border-radius: 2px; }
    .muted { opacity: 0.7; }
  `];

  // VS Code swaps the body's theme class on a theme change: charts take their colours when drawn, so redraw.
  private readonly themeWatch = new MutationObserver(() => this.drawCharts());

  override connectedCallback(): void {
    super.connectedCallback();
    this.themeWatch.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  }

  override updated(): void {
    this.drawCharts();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.themeWatch.disconnect();
    this.charts.forEach((c) => c.destroy());
  }

  private drawCharts(): void {
    this.charts.forEach((c) => c.destroy());
    this.charts = [];
    const d = this.data;
    const bars = this.renderRoot.querySelector<HTMLCanvasElement>('#bars');
    const sweep = this.renderRoot.querySelector<HTMLCanvasElement>('#sweep');
    if (!d || !bars || !sweep) return;
    const p = palette();
    const names = d.datasets.map((x) => x.name);
    // Guard thresholds as short horizontal marks at ±threshold over each bar.
    const marks = d.datasets.flatMap((x) => x.thresholds.flatMap((t) => [t.nats, -t.nats].map((y) => ({ x: x.name, y }))));
    const goals = d.datasets.flatMap((x) => x.thresholds.flatMap((t) => (t.goalNats === undefined ? [] : [t.goalNats, -t.goalNats].map((y) => ({ x: x.name, y })))));
    const scales = { x: { ticks: { color: p.fg }, grid: { color: p.grid } }, y: { ticks: { color: p.fg }, grid: { color: p.grid }, title: { display: true, text: 'Δloss (nats/token)', color: p.fg } } };
    this.charts.push(new Chart(bars, {
      data: {
        labels: names,
        datasets: [
          { type: 'bar', label: 'Δloss', data: d.datasets.map((x) => x.delta), backgroundColor: d.datasets.map((x) => (x.role === 'target' ? p.target : p.offTarget)) },
          { type: 'scatter', label: 'guard threshold', data: marks as never, pointStyle: 'line', pointRadius: 14, borderWidth: 2, borderColor: p.threshold, backgroundColor: p.threshold },
          ...(goals.length ? [{ type: 'scatter' as const, label: 'guard goal', data: goals as never, pointStyle: 'line', pointRadius: 10, borderWidth: 2, borderColor: p.goal, backgroundColor: p.goal }] : []),
        ],
      },
      options: { animation: false, maintainAspectRatio: false, scales, plugins: { legend: { labels: { color: p.fg } } } },
    }));
    this.charts.push(new Chart(sweep, {
      type: 'line',
      data: {
        datasets: names.map((n, i) => ({ label: n, data: d.sweep.map((r) => ({ x: r.scale, y: r.deltas[n] })), borderColor: p.series[i % p.series.length], backgroundColor: p.series[i % p.series.length], pointRadius: 2 })),
      },
      options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { ...scales, x: { ...scales.x, type: 'linear', title: { display: true, text: `scale of ${d.edit}`, color: p.fg } } }, plugins: { legend: { labels: { color: p.fg } } } },
    }));
  }

  private heat() {
    const d = this.data!;
    const names = Object.keys(d.heatmap);
    const current = this.heatDataset && names.includes(this.heatDataset) ? this.heatDataset : savedUi('heatDataset', names.find((n) => d.datasets.find((x) => x.name === n)?.role === 'target') ?? names[0]);
    const tokens = d.heatmap[current] ?? [];
    const max = Math.max(1e-9, ...tokens.map((t) => Math.abs(t.delta)));
    return html`
      <div class="row">
        <vscode-single-select id="heat-dataset" @change=${(e: Event) => this.pickHeat((e.target as HTMLSelectElement).value)}>
          ${names.map((n) => html`<vscode-option value=${n} ?selected=${n === current}>${n}</vscode-option>`)}
        </vscode-single-select>
        <span class="muted">red: the edit made the token harder to predict; blue: easier (max |Δ| ${max.toFixed(3)} nats)</span>
        <vscode-button id="debug-worst" secondary title="Start the model debugger where the edit raises this dataset's loss most"
          @click=${() => vscode.postMessage({ type: 'debug', dataset: current })}><vscode-icon name="debug-alt" slot="content-before"></vscode-icon>Debug worst token</vscode-button>
      </div>
      <p class="heat" data-dataset=${current}>${tokens.map((t) => {
        const a = Math.min(1, Math.abs(t.delta) / max);
        const bg = t.delta >= 0 ? `rgba(229, 20, 0, ${a * 0.6})` : `rgba(26, 133, 255, ${a * 0.6})`;
        return html`<span title=${`${JSON.stringify(t.text)}: ${fmt(t.delta)} nats`} .style=${stylePropertyMap({ backgroundColor: bg })}>${t.text}</span>`;
      })}</p>`;
  }

  private pickHeat(name: string): void {
    this.heatDataset = name;
    saveUi({ heatDataset: name });
  }

  override render() {
    const d = this.data;
    if (!d) return html`<p class="muted">${this.busy ?? 'Run “Scalpel: Preview Edit” on a spec to see its effect here.'}</p>`;
    return html`
      <div class="row">
        <h2>Edit <code>${d.edit}</code> at scale <span id="scale">${d.scale.toPrecision(4)}</span></h2>
        ${this.busy ? html`<vscode-progress-ring></vscode-progress-ring><span class="muted">${this.busy}</span>` : nothing}
        <vscode-button id="refresh" secondary @click=${() => vscode.postMessage({ type: 'refresh' })}><vscode-icon name="refresh" slot="content-before"></vscode-icon>Refresh</vscode-button>
        <vscode-button id="apply" @click=${() => vscode.postMessage({ type: 'apply', edit: d.edit })}><vscode-icon name="check" slot="content-before"></vscode-icon>Apply</vscode-button>
      </div>
      <table id="deltas">
        <thead><tr><th>dataset</th><th>role</th><th>tokens</th><th>before</th><th>after</th><th>Δ nats</th></tr></thead>
        <tbody>${d.datasets.map((x) => html`<tr data-dataset=${x.name}><td>${x.name}</td><td>${x.role}</td><td>${x.tokens}</td><td>${x.base.toFixed(4)}</td><td>${x.edited.toFixed(4)}</td><td class="delta">${fmt(x.delta)}</td></tr>`)}</tbody>
      </table>
      <div class="charts">
        <div><h2>Δloss per dataset</h2><div class="chart"><canvas id="bars"></canvas></div></div>
        <div><h2>Scale sweep <span class="muted">(first ${d.sweepTokens} tokens of each dataset)</span></h2><div class="chart"><canvas id="sweep"></canvas></div></div>
      </div>
      <h2>Checks</h2>
      <table id="checks">${d.checks.map((c) => html`<tr>${checkStatus(c)}<td>${c.message}</td><td>${c.line ? `line ${c.line}` : ''}</td></tr>`)}</table>
      <h2>Per-token Δloss</h2>
      ${this.heat()}
      <h2>Components (${d.components.length})</h2>
      <table id="components">${d.components.map((c) => html`<tr><td><code>${c.key}</code></td><td>${c.label ?? html`<span class="muted">unlabelled</span>`}</td><td>${c.gate ?? ''}</td></tr>`)}</table>
      <p class="muted">measured in ${d.seconds.toFixed(2)} s</p>`;
  }
}
customElements.define('scalpel-preview', PreviewView);
