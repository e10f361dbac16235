"""A rerun never passes off results made with other inputs or settings: every stage that keeps
done-markers (curated shards, dedup, derived shards, pack) redoes exactly what changed."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from winnow.tasks.pipeline import WinnowConfig

pytestmark = pytest.mark.slow


def run(cfg):
    from winnow.flows.curate import curate

    return curate(cfg)


def _cfg(out, inputs, **extra):
    base = {"input": [str(p) for p in inputs], "output": str(out), "shard_size_mb": 0,
            "runner": {"kind": "threads", "workers": 2, "retries": 0},
            "lid": {"keep": ["en"]}, "dedup": {"enabled": True}, "pack": {"enabled": True, "seq_len": 1024}}
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return WinnowConfig.model_validate(base)


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}


def langs(out):
    return {json.loads(a)["lid.lang"] for p in (out / "documents").glob("part-*.parquet")
            for a in pq.read_table(p, columns=["annotations"]).column("annotations").to_pylist()}


def test_changed_settings_redo_exactly_the_stages_they_shape(prefect_api, tmp_path, demo_warcs):
    out = tmp_path / "out"
    first = run(_cfg(out, [demo_warcs]))
    assert first["shards_redone"] == 0 and langs(out) == {"en"}
    docs, deduped, packed = mtimes(out / "documents"), mtimes(out / "deduped"), mtimes(out / "packed")

    # LID keep-list: every shard redone (not "12 already done"), and everything after it too.
    german = run(_cfg(out, [demo_warcs], lid={"keep": ["de"]}))
    assert german["shards_skipped_as_done"] == 0 and german["shards_redone"] == 12
    assert langs(out) <= {"de"} and german["stages"]["lid"]["docs_out"] < first["stages"]["lid"]["docs_out"]
    assert mtimes(out / "deduped") != deduped and mtimes(out / "packed") != packed

    # Back to English, then a dedup setting: curated shards are reused, dedup and pack redone.
    run(_cfg(out, [demo_warcs]))
    docs, deduped, packed = mtimes(out / "documents"), mtimes(out / "deduped"), mtimes(out / "packed")
    loose = run(_cfg(out, [demo_warcs], dedup={"verify_threshold": None}))
    assert loose["shards_skipped_as_done"] == 12 and mtimes(out / "documents") == docs
    assert mtimes(out / "deduped") != deduped and mtimes(out / "packed") != packed

    # A pack setting: only the packed output is redone.
    run(_cfg(out, [demo_warcs]))
    docs, deduped = mtimes(out / "documents"), mtimes(out / "deduped")
    shorter = run(_cfg(out, [demo_warcs], pack={"seq_len": 256}))
    assert mtimes(out / "documents") == docs and mtimes(out / "deduped") == deduped
    assert shorter["packed"]["seq_len"] == 256
    assert all(len(r) <= 256 for p in (out / "packed").glob("train-*.parquet")
               for r in pq.read_table(p).column("input_ids").to_pylist())
    # And a setting that shapes nothing (runner) redoes nothing.
    same = run(_cfg(out, [demo_warcs], runner={"workers": 1}, pack={"seq_len": 256}))
    assert same["shards_skipped_as_done"] == 12 and mtimes(out / "documents") == docs


def test_a_replaced_input_file_is_redone_and_removed_inputs_leave_no_shards(prefect_api, tmp_path, demo_warcs):
    crawl = tmp_path / "crawl"
    shutil.copytree(demo_warcs, crawl)
    out = tmp_path / "out"
    first = run(_cfg(out, [crawl]))
    files = sorted(crawl.iterdir())
    # Replace one file with another crawl's content: its shard is redone, the others are not.
    shutil.copy(files[0], files[5])
    second = run(_cfg(out, [crawl]))
    assert second["shards_skipped_as_done"] == 11 and second["shards_redone"] == 1
    # Fewer inputs: the shards past the end are removed, so a folder read sees only this run.
    for f in files[6:]:
        f.unlink()
    third = run(_cfg(out, [crawl]))
    assert third["shards"] == 6
    assert sorted(p.name for p in (out / "documents").glob("part-*.parquet")) == [f"part-{k:05d}.parquet"
                                                                                   for k in range(6)]
    assert pq.read_table(out / "documents").num_rows == third["rows"] <= first["rows"]
