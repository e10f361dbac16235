#!/usr/bin/env bash
# mypy on the installed package layout: flows/, tasks/, filters/ are winnow.flows, winnow.tasks and
# winnow.filters (setuptools package-dir), which mypy cannot see in the checkout itself, so it
# checks a tree of links that has the installed shape.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
stage=build/typecheck
rm -rf "$stage" && mkdir -p "$stage/winnow"
for f in winnow/*.py winnow/py.typed; do ln -s "$PWD/$f" "$stage/winnow/"; done
for pkg in flows tasks filters; do ln -s "$PWD/$pkg" "$stage/winnow/$pkg"; done
cd "$stage" && "$OLDPWD/$PY" -m mypy --config-file "$OLDPWD/pyproject.toml" -p winnow
