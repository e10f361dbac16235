"""FineWeb-2's per-language configs: every file winnow ships equals upstream's at HEAD.

Reference: huggingface/fineweb-2, ``configs/<name>.yml`` at commit d0defb2 (HEAD of the stored copy,
2025-10-27), frozen in ``data/fineweb2/upstream_configs.json`` (values as ``yaml.safe_load`` reads
them, git's blob id of each file, and the last commit that changed it). Licence: ODC-By 1.0 for the
data, Apache-2.0 for the repository's code. An accidental edit of a shipped file, a stale copy (as
``tur_Latn`` was: its December 2024 values) or an index entry naming the wrong commit fails here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from winnow.filters import multilingual as ml

SHIPPED = Path(ml.__file__).parent / "data" / "fineweb2"
UPSTREAM = json.loads((Path(__file__).parent / "data" / "fineweb2" / "upstream_configs.json").read_text("utf-8"))
FILES = UPSTREAM["files"]


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_every_shipped_language_is_frozen_here() -> None:
    assert sorted(p.stem for p in SHIPPED.glob("*_*.yml")) == sorted(FILES) == ml.bundled_configs()


@pytest.mark.parametrize("name", sorted(FILES))
def test_shipped_file_equals_upstream_head(name: str) -> None:
    up = FILES[name]
    data = (SHIPPED / f"{name}.yml").read_bytes()
    assert yaml.safe_load(data) == up["values"], f"{name}.yml differs from {UPSTREAM['_provenance']['commit'][:7]}"
    assert _git_blob_id(data) == up["blob"], f"{name}.yml is not byte for byte upstream's file"


@pytest.mark.parametrize("name", sorted(FILES))
def test_loaded_settings_are_upstreams_values(name: str) -> None:
    values = FILES[name]["values"]
    cfg = ml.load_config(name)
    for key in ml.CONFIG_KEYS:
        want = values[key]
        got = cfg[key]
        if key in ("top_n_grams", "dup_n_grams"):
            got = [list(pair) for pair in got]
        elif key == "stopwords":
            got = list(got)
        assert got == want, key
    s = ml.language_settings(name)
    assert s is not None and s.language_score == values["language_score"]
    assert s.source.endswith(f"@{FILES[name]['last_changed'][:7]}")


def test_index_records_the_commit_each_file_comes_from() -> None:
    index = yaml.safe_load((SHIPPED / "index.yml").read_text("utf-8"))
    assert index["head"] == UPSTREAM["_provenance"]["commit"]
    assert {n: e["commit"] for n, e in index["languages"].items()} == {n: f["last_changed"] for n, f in FILES.items()}
    readme = (SHIPPED / "README.md").read_text("utf-8")
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| `")}
    for name, f in FILES.items():
        assert f"`{f['last_changed']}`" in rows[f"`{name}.yml`"], f"README.md's row of {name}.yml names another commit"


def test_turkish_is_the_paper_version_not_december_2024s() -> None:
    # The values the issue named; winnow shipped baedee4's (2024-12-06): 0.303, 0.2, 0.273, top 2-grams 0.094.
    p = ml.language_settings("tr")
    assert p is not None
    params = p.quality_params()
    assert params["gopher_repetition"]["dup_line_frac"] == 0.272
    assert params["fineweb"]["line_punct_thr"] == 0.091
    assert params["fineweb"]["new_line_ratio"] == 0.222
    assert params["gopher_repetition"]["top_n_grams"] == ((2, 0.214), (3, 0.168), (4, 0.147))
    assert params["gopher_repetition"]["dup_n_grams"][0] == (5, 0.154)
