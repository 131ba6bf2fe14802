#!/usr/bin/env bash
# The Debian packages the test suites drive for real: a Jupyter server, nbconvert/nbclient,
# jupyter_kernel_test, ipykernel (the reference kernel for the client tests), JupyterLab's server
# Chromium for the browser tests, etcd (the etcd rendezvous) and iproute2 (two hosts in network namespaces). Installs whatever is missing (apt-get, as root or via sudo);
# fails loudly when it cannot, naming the command to run.
set -euo pipefail
PACKAGES=(python3-jupyter-server python3-notebook python3-nbclient jupyter-nbconvert python3-jupyter-kernel-test
          python3-jupyterlab-server python3-ipykernel jupyter-console chromium etcd-server iproute2)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing Debian packages the tests need: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "error: not root and no sudo; run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
