#!/usr/bin/env bash
# Install everything the tests need (Debian packages, Python packages, the vcsim build) and run
# the whole suite: core, CLI, the three drivers against their labs.
source "$(dirname "$0")/common.sh"
# gcc + libxml2-dev + python3-dev: ovirt-engine-sdk-python builds from source;
# golang-go + golang-github-vmware-govmomi-dev: the project's vcsim (contrib/vcsim) builds offline.
apt_install gcc libxml2-dev golang-go golang-github-vmware-govmomi-dev chromium
# mount (tmpfs, read-only bind) and setpriv (util-linux): the disk-full / read-only / foreign-owned
# state dir tests (run as root, as CI does); both are Essential on Debian, named here all the same
apt_install mount util-linux
apt_install etcd-server  # a real three-member etcd cluster on loopback for the watch/coordination tests
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || apt_install python3-dev
make_venv
"$VENV/bin/pip" install -q -e "$ROOT[testing,rvtools,docs,lint]" \
  -e "$ROOT/plugins/proxmox" -e "$ROOT/plugins/ovirt" -e "$ROOT/plugins/vsphere"
bash "$ROOT/contrib/vcsim/build.sh" >&2
cd "$ROOT"
lint=0; bash "$ROOT/contrib/setup/lint.sh" || lint=$?  # ruff, format, mypy --strict, mkdocs --strict (all run)
"$VENV/bin/python" -m pytest -q "$@"
exit "$lint"
