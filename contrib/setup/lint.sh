#!/usr/bin/env bash
# What CI checks besides the tests, core and plugins alike: ruff, ruff format, mypy --strict,
# and the documentation site (mkdocs --strict). Every check runs; the exit status says whether
# any failed. Needs the venv of test.sh (the docs and lint extras).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
failed=()
check() { echo "== $*" >&2; "$@" || failed+=("$*"); }
check "$VENV/bin/ruff" check .
check "$VENV/bin/ruff" format --check ftbridge tests docs plugins  # contrib/ is not shipped
check "$VENV/bin/mypy"  # the core, its CLI and its tests ([tool.mypy] in pyproject.toml)
for dir in plugins/*/; do  # each plugin on its own: its tests reuse the core's module names
  name="$(basename "$dir")"
  echo "== mypy plugins/$name" >&2
  (cd "$dir" && MYPYPATH="$ROOT" "$VENV/bin/mypy" --strict --config-file=/dev/null "ftbridge_$name" tests) \
    || failed+=("mypy plugins/$name")
done
check "$VENV/bin/mkdocs" build --strict -q -d "$(mktemp -d)"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'lint failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
