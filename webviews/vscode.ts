/** The webview side of the VS Code API: messages out, state kept across reloads and restarts. */
import type { FromWebview, ToWebview } from '../extension/protocol.js';

interface VsCodeApi {
  postMessage(message: FromWebview): void;
  getState(): SavedState | undefined;
  setState(state: SavedState): void;
}

/** What a panel needs to redraw itself without asking the extension (and what its serializer restores). */
export type SavedState = { last?: ToWebview; ui?: Record<string, unknown> };

declare function acquireVsCodeApi(): VsCodeApi;

// acquireVsCodeApi may be called once per page.
export const vscode: VsCodeApi = acquireVsCodeApi();

export function saveUi(patch: Record<string, unknown>): void {
  const s = vscode.getState() ?? {};
  vscode.setState({ ...s, ui: { ...s.ui, ...patch } });
}

export function savedUi<T>(key: string, fallback: T): T {
  return (vscode.getState()?.ui?.[key] as T | undefined) ?? fallback;
}

/** A theme colour from VS Code's `--vscode-*` variables, with a fallback outside VS Code. */
export function themeColor(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(`--vscode-${name}`).trim() || fallback;
}

export const fmt = (v: number, digits = 4) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
