"""The decontamination stage on the shipped eval-style sets: index once, per-benchmark counts."""

from __future__ import annotations

import json

import pytest

from winnow.document import Document
from winnow.stage import StageEnv, StageError
from winnow.tasks.decontam import DecontamConfig, DecontamStage, build_index


def corpus(test_data) -> list[dict]:
    return [json.loads(x) for x in (test_data / "decontam" / "corpus.jsonl").read_text().splitlines()]


def test_planted_items_are_dropped_per_benchmark(test_data, run_stage):
    rows = corpus(test_data)
    cfg = DecontamConfig(enabled=True, eval_sets=[str(test_data / "decontam" / "gutenberg_cloze.jsonl"),
                                                  str(test_data / "decontam" / "genesis_completion.parquet"),
                                                  str(test_data / "decontam" / "eltec_qa")])
    docs = [Document(id=r["id"], text=r["text"]) for r in rows]
    kept, stats = run_stage(DecontamStage, cfg, docs)
    expected = {r["id"] for r in rows if r.get("expect")}
    assert {d.id for d in docs} - {d.id for d in kept} == expected
    assert sum(stats.dropped_docs.values()) == len(expected)
    assert all(reason.startswith("decontam:") for reason in stats.dropped_docs)
    per_benchmark = {k.split(":", 1)[1]: v for k, v in stats.counters.items() if k.startswith("benchmark:")}
    assert set(per_benchmark) == {"gutenberg_cloze", "genesis_completion", "eltec_qa"}
    annotated, _ = run_stage(DecontamStage, cfg.model_copy(update={"mode": "annotate"}),
                             [Document(id=r["id"], text=r["text"]) for r in rows])
    assert len(annotated) == len(rows)
    assert {d.id for d in annotated if d.annotations.get("decontam.benchmarks")} == expected


def test_index_is_built_once_and_loaded_by_every_shard(tmp_path, test_data):
    cfg = DecontamConfig(enabled=True, eval_sets=[str(test_data / "decontam" / "gutenberg_cloze.jsonl")])
    env = StageEnv({}, str(tmp_path))
    DecontamStage.prepare(cfg, env)
    saved = list((tmp_path / "_decontam").glob("index-*.npz"))
    assert len(saved) == 1
    index, path = build_index(cfg, env)
    assert path == str(saved[0]) and index.n == 13


def test_settings_follow_the_eval_files(tmp_path, test_data):
    evalset = tmp_path / "bench.jsonl"
    evalset.write_text(json.dumps({"question": "a b c d e f g h i j k l m n", "answer": "o"}) + "\n")
    cfg = DecontamConfig(enabled=True, eval_sets=[str(evalset)])
    before = DecontamStage.settings(cfg, StageEnv())
    evalset.write_text(json.dumps({"question": "a b c d e f g h i j k l m n o p", "answer": "q"}) + "\n")
    assert DecontamStage.settings(cfg, StageEnv()) != before


def test_bad_eval_sets_fail_before_work(tmp_path):
    with pytest.raises(StageError, match="names no file"):
        DecontamStage.check(DecontamConfig(enabled=True), StageEnv())
    with pytest.raises(StageError, match="no such file"):
        DecontamStage.check(DecontamConfig(enabled=True, eval_sets=[str(tmp_path / "none.jsonl")]), StageEnv())
    (tmp_path / "x.jsonl").write_text(json.dumps({"id": 1, "score": 2}) + "\n")
    bad = DecontamConfig(enabled=True, eval_sets=[str(tmp_path / "x.jsonl")])
    DecontamStage.check(bad, StageEnv(output=str(tmp_path / "out")))  # cheap: writes nothing
    assert not (tmp_path / "out").exists()
    # The index is built by prepare(), which the flow runs inside its lock before any shard.
    with pytest.raises(StageError, match="x.jsonl"):
        DecontamStage.prepare(bad, StageEnv(output=str(tmp_path / "out")))
