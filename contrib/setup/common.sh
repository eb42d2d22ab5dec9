# Shared by demo.sh and test.sh: find Python 3.11+, install Debian packages when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FTBRIDGE_VENV:-$ROOT/.venv}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {  # apt_install PKG... : installs those not yet installed
  local need=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p"); done
  if [ "${#need[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

python_bin() {
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return
    fi
  done
  echo "ftbridge needs Python 3.11 or newer" >&2; exit 3
}

make_venv() {
  local py; py="$(python_bin)"
  if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then apt_install python3-venv; fi
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
}
