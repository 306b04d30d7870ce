/** A check's row in the Preview and Review panels: pass or FAIL, and a passing check's missed goal marked beside it. */
import { css, html, nothing } from 'lit';
import type { CheckView } from '../extension/protocol.js';

export const checkStyles = css`
  .pass { color: var(--vscode-testing-iconPassed, green); }
  .fail { color: var(--vscode-testing-iconFailed, red); }
  .goal-missed { color: var(--vscode-editorWarning-foreground, #bf8803); }
`;

/** The status cell: `pass`, `FAIL`, or `pass` with `goal missed` (the message says by how much). */
export function checkStatus(c: Pick<CheckView, 'pass' | 'goal'>) {
  const missed = c.pass && c.goal && !c.goal.met;
  return html`<td class=${c.pass ? 'pass' : 'fail'}>${c.pass ? 'pass' : 'FAIL'}${missed ? html` <span class="goal-missed">goal missed</span>` : nothing}</td>`;
}
