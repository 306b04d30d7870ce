/**
 * The one HTML page every Scalpel webview loads (no vscode import: the Chromium tests build the same
 * page). Strict CSP: nothing inline, no remote content; script and styles come from the webview
 * bundle, and lit's styles are allowed by the per-render nonce.
 */
import { randomBytes } from 'node:crypto';

import type { ViewKind } from './protocol';

export type { ViewKind } from './protocol';

export interface PageUris {
  /** The webview's resource origin (`webview.cspSource`). */
  cspSource: string;
  script: string;
  style: string;
  codicons: string;
}

export function nonce(): string {
  return randomBytes(18).toString('base64url');
}

export function contentSecurityPolicy(cspSource: string, nonceValue: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonceValue}'`,
    `style-src ${cspSource} 'nonce-${nonceValue}'`,
    `font-src ${cspSource}`,
    `img-src ${cspSource} data:`,
  ].join('; ');
}

const attr = (s: string) => s.replace(/[&"<>]/g, (c) => ({ '&': '&amp;', '"': '&quot;', '<': '&lt;', '>': '&gt;' })[c]!);

export function webviewHtml(view: ViewKind, title: string, uris: PageUris, nonceValue = nonce()): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${attr(contentSecurityPolicy(uris.cspSource, nonceValue))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${attr(title)}</title>
<link rel="stylesheet" id="vscode-codicon-stylesheet" href="${attr(uris.codicons)}" nonce="${nonceValue}">
<link rel="stylesheet" href="${attr(uris.style)}" nonce="${nonceValue}">
</head>
<body data-view="${view}">
<scalpel-app view="${view}"></scalpel-app>
<script nonce="${nonceValue}" src="${attr(uris.script)}"></script>
</body>
</html>
`;
}
