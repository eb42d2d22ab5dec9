#!/usr/bin/env bash
# Install ftbridge into .venv and run its main job on the embedded demo estate (audit + plan).
source "$(dirname "$0")/common.sh"
make_venv
"$VENV/bin/pip" install -q -e "$ROOT"
exec "$VENV/bin/ftbridge" demo --reset "$@"
