"""The example configs run on the shipped sample: FineWeb's recipe and the multilingual one."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_fineweb_example(run_winnow, repo, tmp_path):
    run_winnow("run", str(repo / "examples" / "fineweb.yaml"), "-o", str(tmp_path / "out"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["ingest", "lid", "quality", "pii", "dedup"]
    assert summary["rows"] > 10 and summary["dedup"]["clusters"] >= 1
    assert stages["quality"]["docs_in"] == stages["lid"]["docs_out"]


def test_multilingual_example(run_winnow, repo, tmp_path):
    run_winnow("run", str(repo / "examples" / "multilingual.yaml"), "-o", str(tmp_path / "out"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    langs = {k.split(":", 1)[1] for k in summary["stages"]["lid"]["counters"] if k.startswith("lang:")}
    assert {"en", "ja", "zh", "ru"} <= langs
    # Non-English documents get their own settings (never the English stop-word rule): they survive.
    import pyarrow.parquet as pq

    kept = [json.loads(a)["lid.lang"] for a in pq.read_table(tmp_path / "out" / "documents").column("annotations").to_pylist()]
    assert len({lang for lang in kept if lang != "en"}) >= 2, kept
    assert summary["packed"]["sequences"] > 0
