"""`winnow run` with the classify stage: a fastText tagger and a transformers scorer (both
built here) over real crawled pages; the rerun resumes, a retrained model redoes the shards."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
import yaml
from helpers.tiny_models import TEXT, build_transformers, train_fasttext, windows

pytestmark = pytest.mark.slow


def test_winnow_run_with_a_fasttext_tagger_and_a_transformers_scorer(run_winnow, demo_warcs, tmp_path):
    pytest.importorskip("transformers")
    author = train_fasttext(tmp_path, "author", {"austen": windows(TEXT / "austen-persuasion.txt.gz", 600),
                                                 "chesterton": windows(TEXT / "chesterton-thursday.txt.gz", 600)})
    edu = build_transformers(tmp_path / "edu", num_labels=1)
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "input": [str(demo_warcs / "govuk-BL-20140325121225068-00000.warc.gz"),
                  str(demo_warcs / "cc-main-2020-34-sample.warc.gz")],
        "output": str(out), "shard_size_mb": 0, "runner": {"kind": "threads", "workers": 2},
        "lid": {"enabled": False}, "quality": {"enabled": False},
        "classify": {"enabled": True, "write_rejected": True, "classifiers": [
            {"kind": "fasttext", "name": "author", "model_path": str(author), "mode": "annotate"},
            {"kind": "transformers", "name": "edu", "model_path": str(edu), "top_k_percent": 50, "batch_size": 8},
        ]},
    }))
    run_winnow("run", str(config))
    summary = json.loads((out / "summary.json").read_text())
    stage = summary["stages"]["classify"]
    assert stage["docs_in"] == summary["stages"]["ingest"]["docs_out"] > 20
    assert set(stage["dropped_docs"]) == {"classify:edu"}
    assert abs(stage["docs_out"] - stage["docs_in"] / 2) <= 1  # half of each of the two shards
    notes = [json.loads(a) for p in sorted((out / "documents").glob("*.parquet"))
             for a in pq.read_table(p, columns=["annotations"]).column("annotations").to_pylist()]
    assert len(notes) == stage["docs_out"]
    assert all(n["classify.author.label"] in {"austen", "chesterton"} and 0 <= n["classify.author.score"] <= 1
               for n in notes)
    assert all(n["classify.edu.int_score"] in range(6) and "classify.edu.score" in n for n in notes)
    rejected = [json.loads(a) for p in sorted((out / "rejected").glob("*.parquet"))
                for a in pq.read_table(p, columns=["annotations"]).column("annotations").to_pylist()]
    assert len(rejected) == stage["dropped_docs"]["classify:edu"]
    assert all(r["classify.reason"] == "classify:edu" for r in rejected)

    again = run_winnow("run", str(config))
    assert json.loads((out / "summary.json").read_text())["shards_skipped_as_done"] == 2, again.stdout[-2000:]
    os.utime(author, ns=(10**18, 10**18))  # "retrained" at the same path
    run_winnow("run", str(config))
    assert json.loads((out / "summary.json").read_text())["shards_redone"] == 2

    # A model that is not there: refused before any shard, in one line naming the classifier.
    bad = yaml.safe_load(config.read_text())
    bad["classify"]["classifiers"][1]["model_path"] = str(tmp_path / "no-such-model")
    config.write_text(yaml.safe_dump(bad))
    refused = run_winnow("run", str(config), check=False)
    assert refused.returncode != 0
    assert "classify.classifiers[1] (edu): transformers model folder not found" in refused.stderr + refused.stdout

    stages = run_winnow("stages").stdout
    assert "classify" in stages and "top_k_percent" in stages
