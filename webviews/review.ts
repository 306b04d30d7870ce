/** Review: the last apply's lock — scales, components, metrics before and after, checks, weight diff. */
import { LitElement, css, html } from 'lit';
import type { ReviewResult } from '../extension/protocol.js';
import { checkStatus, checkStyles } from './checks.js';
import { fmt, vscode } from './vscode.js';

export class ReviewView extends LitElement {
  static override properties = { data: { attribute: false } };
  declare data?: ReviewResult;

  static override styles = [checkStyles, css`
    :host { display: block; padding: 8px 16px; color: var(--vscode-foreground); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); }
    h2 { font-size: 1.1em; margin: 16px 0 6px; }
    table { border-collapse: collapse; }
    td, th { padding: 2px 8px; text-align: right; border-bottom: 1px solid var(--vscode-editorWidget-border, #8884); }
    td:first-child, th:first-child, #checks td, #components td { text-align: left; }
    .muted { opacity: 0.7; }
  `];

  override render() {
    const d = this.data;
    if (!d) return html`<p class="muted">Run “Scalpel: Review Edit” on an applied spec.</p>`;
    return html`
      <h2>Edits ${d.edits.map((e) => html`<code>${e}</code> × <span class="scale">${d.scales[e]?.toPrecision(4)}</span> `)}</h2>
      <vscode-button id="diff" secondary @click=${() => vscode.postMessage({ type: 'diff' })}><vscode-icon name="diff" slot="content-before"></vscode-icon>Open spec diff</vscode-button>
      <p class="muted">output <code>${d.output}</code> · lock <code>${d.lock}</code></p>
      <h2>Loss before and after</h2>
      <table id="metrics"><tr><th>dataset</th><th>tokens</th><th>before</th><th>after</th><th>Δ nats</th></tr>
        ${d.metrics.map((m) => html`<tr data-dataset=${m.name}><td>${m.name}</td><td>${m.tokens}</td><td>${m.before.toFixed(4)}</td><td>${m.after.toFixed(4)}</td><td class="delta">${fmt(m.delta)}</td></tr>`)}</table>
      <h2>Checks</h2>
      <table id="checks">${d.checks.map((c) => html`<tr>${checkStatus(c)}<td>${c.message}</td></tr>`)}</table>
      <h2>Weight diff</h2>
      <table id="weights"><tr><th>initializer</th><th>shape</th><th>changed</th><th>‖ΔW‖/‖W‖</th><th>max |Δ|</th></tr>
        ${d.weights.map((w) => html`<tr><td><code>${w.initializer}</code></td><td>${w.shape.join('×')}</td><td>${w.changed}</td><td>${w.relFrobenius.toExponential(3)}</td><td>${w.maxAbs.toExponential(3)}</td></tr>`)}</table>
      <h2>Components (${d.components.length})</h2>
      <table id="components">${d.components.map((c) => html`<tr><td><code>${c.key}</code></td><td>${c.label ?? ''}</td><td>${c.edit}</td><td>× ${c.scale.toPrecision(4)}</td><td>${c.gate ?? ''}</td></tr>`)}</table>`;
  }
}
customElements.define('scalpel-review', ReviewView);
