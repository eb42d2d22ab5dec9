#!/usr/bin/env bash
# Build ftbridge-vcsim offline from Debian's govmomi 0.24.2 (GOPATH mode, no module proxy).
# Installs golang-go and golang-github-vmware-govmomi-dev with apt when they are missing.
# Prints the path of the binary on stdout (everything else goes to stderr).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${FTBRIDGE_VCSIM_BIN:-$here/bin/ftbridge-vcsim}"
gocode=/usr/share/gocode

if ! command -v go >/dev/null 2>&1 || [ ! -d "$gocode/src/github.com/vmware/govmomi/simulator" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "build.sh: need golang-go and golang-github-vmware-govmomi-dev (run as root, or install them)" >&2
        exit 3
    fi
    echo "build.sh: installing golang-go golang-github-vmware-govmomi-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || true
    apt-get install -y -q golang-go golang-github-vmware-govmomi-dev >&2
fi

# Rebuild only when a source file is newer than the binary.
if [ -x "$out" ] && [ -z "$(find "$here" -maxdepth 1 -name '*.go' -newer "$out" -print -quit)" ] \
        && [ "$here/build.sh" -ot "$out" ]; then
    echo "$out"
    exit 0
fi

mkdir -p "$(dirname "$out")" "$here/.gopath"
cd "$here"
GOPATH="$here/.gopath:$gocode" GO111MODULE=off GOPROXY=off \
    GOCACHE="${GOCACHE:-$here/.gocache}" go build -o "$out.tmp" . >&2
mv "$out.tmp" "$out"
echo "$out"
