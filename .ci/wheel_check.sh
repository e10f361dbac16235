#!/usr/bin/env bash
# The wheel as a user gets it: built from the checkout, installed into a fresh venv outside it,
# run from a folder that holds a user's own tasks.py and flows/ (which must shadow nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
FIND_LINKS=$([ -d /opt/wheels ] && echo "--find-links /opt/wheels" || true)
work=$(mktemp -d /tmp/winnow-wheel-XXXX)
trap 'rm -rf "$work"' EXIT
# setuptools builds in build/ and writes winnow.egg-info beside the sources; here both go to the
# temp folder (DIST_EXTRA_CONFIG: extra setup.cfg settings), so the checkout is left as it was
# (a build/lib/winnow/ copy of the sources would double every grep hit).
printf '[build]\nbuild_base = %s\n[egg_info]\negg_base = %s\n' "$work/build" "$work" > "$work/setup.cfg"
DIST_EXTRA_CONFIG="$work/setup.cfg" $PYTHON -m uv build -q --wheel -o "$work/dist" .
wheel=$(ls "$work"/dist/winnow-*.whl)
# One import package, with its data: the LID model and thresholds, the deployments, py.typed.
$PYTHON - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")})
assert tops == ["winnow"], f"the wheel installs top-level packages {tops}"
for needed in ("winnow/models/lid.176.ftz", "winnow/models/lid176_thresholds.json", "winnow/py.typed",
               "winnow/deploy/prefect.yaml", "winnow/examples/demo.yaml", "winnow/filters/data/fineweb2/index.yml",
               "winnow/tasks/ingest.py", "winnow/flows/deployed.py"):
    assert needed in names, f"{needed} is missing from the wheel"
print(f"wheel {sys.argv[1]}: {len(names)} files, one package")
PY
$PYTHON -m uv venv -q --python "$PYTHON" "$work/venv"
$PYTHON -m uv pip install -q --python "$work/venv/bin/python" $FIND_LINKS "$wheel[multilingual]"
mkdir -p "$work/project/flows"
echo 'raise SystemExit("a user tasks.py was imported instead of winnow.tasks")' > "$work/project/tasks.py"
echo 'raise SystemExit("a user flows/ was imported instead of winnow.flows")' > "$work/project/flows/__init__.py"
cd "$work/project"
# The extra's segmenters are what the installed wheel picks for Chinese, Japanese, Korean, Thai, Vietnamese.
"$work/venv/bin/python" -c "from winnow.filters.multilingual import settings_for as s
bad = [x for x in ('zh', 'ja', 'ko', 'th', 'vi') if s(x).fallback]
assert not bad, f'multilingual extra: fallback tokenizers for {bad}'"
env -u PREFECT_API_URL PREFECT_HOME="$work/prefect-home" "$work/venv/bin/winnow" --version
"$work/venv/bin/winnow" deploy --help >/dev/null
"$work/venv/bin/winnow" stages >/dev/null
env -u PREFECT_API_URL PREFECT_HOME="$work/prefect-home" "$work/venv/bin/winnow" --quiet demo -o "$work/project/demo-output"
test -s demo-output/report.html && test -s demo-output/packed/__meta__/manifest.json
ls demo-output/documents/part-*.parquet >/dev/null
echo "wheel check: the installed wheel ran the demo and deploy --help from $work/project"
