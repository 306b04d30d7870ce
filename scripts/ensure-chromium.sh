#!/usr/bin/env bash
# The webview tests render the panels in Debian's Chromium (never a browser download). Installs it when missing,
# so `npm test` works on a fresh machine; elsewhere SCALPEL_CHROMIUM may point at another Chromium.
set -euo pipefail
if [ -n "${SCALPEL_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian's chromium for the webview tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
