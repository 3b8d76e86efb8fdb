#!/usr/bin/env bash
# Install the system packages catty-jupyter needs (bubblewrap, git, Node.js), or say what to install.
# `system-deps.sh test` also installs what the tests need: Chromium for the browser tests.
set -euo pipefail

missing=()
if [ "${1:-}" = test ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium fonts-dejavu-core)
fi
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v git >/dev/null 2>&1 || missing+=(git)
# Node.js builds and tests the JupyterLab extension (its builder needs node >= 20).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
elif [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "catty-jupyter needs Node.js 20 or newer to build its JupyterLab extension; found $(node --version)" >&2
  exit 1
fi
if [ -z "$(command -v python3 2>/dev/null)" ]; then
  missing+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing system packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "catty-jupyter needs these system packages: ${missing[*]}" >&2
  echo "Install them, for example: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
