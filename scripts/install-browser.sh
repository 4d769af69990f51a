#!/usr/bin/env bash
# Installs what the browser test needs: Debian's chromium, node/npm, and
# playwright-core (pinned in tests/browser/package.json) into tests/browser/node_modules.
# Idempotent: does nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# scripts/test-browser.sh waits for the lab with curl.
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "install-browser: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -x /usr/bin/chromium ] || { echo "install-browser: /usr/bin/chromium missing" >&2; exit 1; }
want=$(node -p "require('./tests/browser/package.json').dependencies['playwright-core']")
have=$(node -p "try { require('./tests/browser/node_modules/playwright-core/package.json').version } catch (e) { '' }")
if [ "$have" != "$want" ]; then
  echo "install-browser: installing playwright-core $want" >&2
  # playwright-core downloads no browser of its own; we point it at /usr/bin/chromium.
  if [ -f tests/browser/package-lock.json ]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd tests/browser && npm install --no-audit --no-fund --loglevel=error)
  fi
fi
echo "install-browser: ok ($(/usr/bin/chromium --version 2>/dev/null | head -1), node $(node --version), playwright-core $want)" >&2
