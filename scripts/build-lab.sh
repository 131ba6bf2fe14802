#!/usr/bin/env bash
# Builds what the JupyterLab tests and `tslaunch install` need: the labextension (its own npm
# package) and the JupyterLab app the browser tests open. Each npm ci runs only when its lockfile
# changed since the last install; the app build is cached by test/lab/build.js.
set -euo pipefail
cd "$(dirname "$0")/.."
install_if_needed() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund
  fi
}
install_if_needed labextension
npm run build --prefix labextension
install_if_needed test/lab
node test/lab/build.js
