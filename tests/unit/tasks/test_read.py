"""The read stage bounds what one JSONL/Parquet record can cost the stages after it."""

from __future__ import annotations

import json

from winnow.stage import StageEnv
from winnow.stats import StageStats
from winnow.tasks.read import ReadConfig, ReadStage


def test_texts_over_the_cap_are_dropped_before_any_stage(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [{"id": "ok", "text": "a short text"}, {"id": "big", "text": "word " * 300_000},
             {"id": "ok2", "text": "another one"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    stats = StageStats()
    docs = list(ReadStage(ReadConfig(max_text_chars=1_000_000), StageEnv()).read(str(path), stats))
    assert [d.id for d in docs] == ["ok", "ok2"]
    assert stats.dropped_docs["text_too_long"] == 1
    assert stats.docs_in == 3 and stats.docs_out == 2


def test_the_default_cap_keeps_ordinary_long_texts(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "x" * 2_000_000}) + "\n")
    stats = StageStats()
    assert len(list(ReadStage(ReadConfig(), StageEnv()).read(str(path), stats))) == 1
