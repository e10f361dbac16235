"""The curate flow end to end on the demo WARCs, in this process, on a real Prefect API."""

from __future__ import annotations

import json
import os
import shutil

import httpx
import pyarrow.parquet as pq
import pytest

from winnow.tasks.pipeline import WinnowConfig

pytestmark = pytest.mark.slow


def _cfg(tmp_path, demo_warcs, **extra):
    return WinnowConfig.model_validate({
        "input": [str(demo_warcs)], "output": str(tmp_path / "out"),
        "runner": {"kind": "threads", "workers": 2, "retries": 0}, "shard_size_mb": 0, **extra,
    })


def untimed(stages: dict) -> dict:
    return {name: {k: v for k, v in st.items() if k != "seconds"} for name, st in stages.items()}


def run(cfg):
    from winnow.flows.curate import curate

    return curate(cfg)


def test_flow_writes_shards_summary_and_artifacts(prefect_api, tmp_path, demo_warcs):
    cfg = _cfg(tmp_path, demo_warcs)
    summary = run(cfg)
    shards = sorted((tmp_path / "out" / "documents").glob("part-*.parquet"))
    assert len(shards) == len(list(demo_warcs.iterdir())) == summary["shards"]
    assert sum(pq.read_metadata(s).num_rows for s in shards) == summary["rows"] > 10
    stages = summary["stages"]
    assert list(stages) == ["ingest", "lid", "quality"]
    for name, st in stages.items():
        assert st["docs_in"] == st["docs_out"] + sum(st["dropped_docs"].values()), name
    # The funnel is a chain: what one stage keeps is what the next one reads.
    assert stages["lid"]["docs_in"] == stages["ingest"]["docs_out"]
    assert stages["quality"]["docs_in"] == stages["lid"]["docs_out"]
    assert stages["quality"]["docs_out"] == summary["rows"]
    ingest = stages["ingest"]
    annotations = json.loads(pq.read_table(shards[0]).column("annotations").to_pylist()[0])
    assert {"lid.lang", "lid.score", "quality.failed"} <= set(annotations)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["rows"] == summary["rows"]
    assert "dropped: revisit" in (tmp_path / "out" / "summary.md").read_text()
    assert not list((tmp_path / "out").rglob(".*tmp-*"))
    resp = httpx.get(f"{prefect_api}/artifacts/winnow-funnel/latest")
    resp.raise_for_status()
    assert resp.json()["type"] == "markdown"
    assert "ingest" in resp.json()["data"] and "truncated_record" in resp.json()["data"]

    # Rerun: every shard is skipped, same totals. Remove one marker: only that shard is redone.
    again = run(cfg)
    assert again["shards_skipped_as_done"] == summary["shards"] and again["rows"] == summary["rows"]
    os.remove(tmp_path / "out" / "documents" / "__done__" / "part-00003.parquet.json")
    third = run(cfg)
    assert third["shards_skipped_as_done"] == summary["shards"] - 1
    assert untimed(third["stages"]) == untimed(summary["stages"])
    assert third["stages"]["ingest"]["docs_out"] == ingest["docs_out"]


def test_one_failing_shard_does_not_stop_the_others(prefect_api, tmp_path, demo_warcs, monkeypatch):
    import winnow.tasks.ingest as ingest_mod
    from winnow.flows.curate import ShardFailures

    real = ingest_mod.ingest_warc

    def flaky(path, *args, **kwargs):
        if "clueweb" in path:
            raise RuntimeError("simulated worker crash")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ingest_mod, "ingest_warc", flaky)
    cfg = _cfg(tmp_path, demo_warcs)
    with pytest.raises(ShardFailures, match="1 of 12 shard"):
        run(cfg)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["shards_failed"] == 1 and "clueweb" in summary["failures"][0]
    assert summary["rows"] > 10
    monkeypatch.setattr(ingest_mod, "ingest_warc", real)
    fixed = run(cfg)
    assert fixed["shards_skipped_as_done"] == 11 and fixed["shards_failed"] == 0
    clueweb = sorted(demo_warcs.iterdir()).index(demo_warcs / "clueweb09-ja-quirk.warc.gz")
    redone = tmp_path / "out" / "documents" / f"part-{clueweb:05d}.parquet"
    assert fixed["rows"] == summary["rows"] + pq.read_metadata(redone).num_rows
    assert fixed["stages"]["ingest"]["docs_in"] == summary["stages"]["ingest"]["docs_in"] + 29


def test_dedup_and_pack_resume_after_a_crash_between_stages(prefect_api, tmp_path, demo_warcs):
    # single_task_below 0: the staged dedup, one task per shard batch, band and merge.
    cfg = _cfg(tmp_path, demo_warcs, dedup={"enabled": True, "partitions": 2, "single_task_below": 0},
               pack={"enabled": True, "seq_len": 512})
    first = run(cfg)
    out = tmp_path / "out"
    assert first["dedup"]["removed"] >= 1 and first["packed"]["sequences"] > 0
    deduped_rows = sum(pq.read_metadata(p).num_rows for p in (out / "deduped").glob("part-*.parquet"))
    assert deduped_rows == first["stages"]["dedup"]["docs_out"] == first["packed"]["documents"]
    packed = {p.name: pq.read_table(p).to_pylist() for p in (out / "packed").glob("train-*.parquet")}

    # Crash after the signatures: later phases' outputs and markers are gone.
    sig_file = out / "dedup" / "bands" / "band=00" / "group=00000.parquet"
    sig_mtime = sig_file.stat().st_mtime_ns
    (out / "dedup" / "components" / "__done__" / "band=03-range=0001.parquet.json").unlink()
    (out / "dedup" / "components" / "band=03-range=0001.parquet").unlink()
    shutil.rmtree(out / "dedup" / "cc")
    shutil.rmtree(out / "dedup" / "clusters")
    shutil.rmtree(out / "deduped")
    shutil.rmtree(out / "packed")
    again = run(cfg)
    assert sig_file.stat().st_mtime_ns == sig_mtime  # finished phases are not redone
    assert again["dedup"] == first["dedup"]
    assert {p.name: pq.read_table(p).to_pylist() for p in (out / "packed").glob("train-*.parquet")} == packed
    # A small corpus runs the same steps in one task (the default): same clusters, same sequences.
    single = run(_cfg(tmp_path / "single", demo_warcs, dedup={"enabled": True, "partitions": 2},
                      pack={"enabled": True, "seq_len": 512}))
    # Same clusters; only the staged path has rounds of component tasks to report.
    assert single["dedup"] == {k: v for k, v in first["dedup"].items() if k != "rounds"}
    assert {p.name: pq.read_table(p).to_pylist()
            for p in (tmp_path / "single" / "out" / "packed").glob("train-*.parquet")} == packed


def test_rephrase_in_the_flow_against_a_local_server(prefect_api, tmp_path, demo_warcs):
    from helpers.openai_server import FakeLLM

    with FakeLLM() as llm:
        cfg = _cfg(tmp_path, demo_warcs, input=[str(demo_warcs / "govuk-BL-20140325121225068-00000.warc.gz")],
                   rephrase={"enabled": True, "base_url": llm.base_url, "model": "fake", "styles": ["medium"]},
                   pack={"enabled": True, "seq_len": 1024})
        summary = run(cfg)
        requests = sum(llm.requests.values())
        again = run(cfg)  # finished shards are skipped: no new requests
        assert sum(llm.requests.values()) == requests
    out = tmp_path / "out"
    table = pq.read_table(out / "rephrased" / "part-00000.parquet").to_pylist()
    real = [r for r in table if "#wrap-" not in r["id"]]
    synthetic = [r for r in table if "#wrap-" in r["id"]]
    assert len(real) == summary["rows"] and len(synthetic) == len(real)  # 1:1
    report = [json.loads(x) for x in (out / "rephrased" / "_report" / "part-00000.parquet.jsonl").read_text().splitlines()]
    assert len(report) == len(real) and all(r["status"] == "ok" for r in report)
    assert summary["packed"]["documents"] == len(table) == again["packed"]["documents"]


def test_failed_rephrase_requests_fail_the_run_and_hold_back_the_later_stages(prefect_api, tmp_path, demo_warcs):
    from helpers.openai_server import FakeLLM
    from helpers.servers import free_port

    from winnow.flows.curate import ShardFailures
    from winnow.stage import StageError

    shard = [str(demo_warcs / "govuk-BL-20140325121225068-00000.warc.gz")]
    down = _cfg(tmp_path, demo_warcs, input=shard,
                rephrase={"enabled": True, "base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m"})
    with pytest.raises(StageError, match="does not answer"):  # a server that is not there: before work
        run(down)
    assert not (tmp_path / "out" / "documents").exists()
    with FakeLLM(faults=True) as llm:  # 429/500/slow/malformed answers, and no retries
        cfg = _cfg(tmp_path, demo_warcs, input=shard,
                   rephrase={"enabled": True, "base_url": llm.base_url, "model": "m", "styles": ["medium"],
                             "max_retries": 0, "timeout_s": 1},
                   pack={"enabled": True, "seq_len": 1024})
        with pytest.raises(ShardFailures, match=r"rephrase: 1 of 1 shard\(s\) had failed requests"):
            run(cfg)
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())  # written either way
    assert summary["rephrase"]["pending_shards"] == 1 and summary["packed"] is None
    assert not (out / "packed").exists()  # pack waits for the retried requests


def test_derived_outputs_follow_the_key_of_their_input_shard(prefect_api, tmp_path, demo_warcs):
    """Keys are content addresses (inputs + settings): a shard redone from the same input with the
    same settings gets the same key, so its derived outputs stay valid; a changed shard changes
    them (the changed-config reruns are in test_reruns.py)."""
    cfg = _cfg(tmp_path, demo_warcs, dedup={"enabled": True}, pack={"enabled": True})
    first = run(cfg)
    out = tmp_path / "out"
    deduped_marker = out / "deduped" / "__done__" / "part-00003.parquet.json"
    before = json.loads(deduped_marker.read_text())
    os.remove(out / "documents" / "__done__" / "part-00003.parquet.json")  # shard 3 will be redone
    second = run(cfg)
    assert second["shards_skipped_as_done"] == first["shards"] - 1
    after = json.loads(deduped_marker.read_text())
    curated = json.loads((out / "documents" / "__done__" / "part-00003.parquet.json").read_text())
    assert after["input_keys"] == [curated["key"]] and after == before
    assert second["dedup"] == first["dedup"] and second["packed"]["sequences"] == first["packed"]["sequences"]


def test_small_files_grouped_into_shards(prefect_api, tmp_path, demo_warcs):
    one_each = run(_cfg(tmp_path / "a", demo_warcs))
    grouped = run(_cfg(tmp_path / "b", demo_warcs, shard_size_mb=1.0))
    assert one_each["shards"] == 12 and 1 < grouped["shards"] < 12
    assert grouped["rows"] == one_each["rows"]
    assert grouped["stages"]["ingest"]["docs_in"] == one_each["stages"]["ingest"]["docs_in"]
    again = run(_cfg(tmp_path / "b", demo_warcs, shard_size_mb=1.0))
    assert again["shards_skipped_as_done"] == grouped["shards"]


def test_shards_are_batched_into_a_bounded_number_of_tasks(prefect_api, tmp_path, demo_warcs):
    summary = run(_cfg(tmp_path, demo_warcs, runner={"kind": "threads", "workers": 2, "max_tasks": 3}))
    runs = httpx.post(f"{prefect_api}/task_runs/filter", json={"limit": 200}).json()
    curate_runs = [r for r in runs if r["name"].startswith("curate-shard") and
                   r["flow_run_id"] == runs[0]["flow_run_id"]]
    assert summary["shards"] == 12 and len(curate_runs) <= 3


def test_storage_credentials_never_reach_the_prefect_server(prefect_api, tmp_path, demo_warcs):
    import fsspec

    # Local files take any extra option, so a credential-like one goes everywhere a real S3 key would.
    secret = {"auto_mkdir": True, "secret": "s3cr3t-value", "client_kwargs": {"aws_session_token": "t0ken"}}
    cfg = _cfg(tmp_path, demo_warcs, input=[str(demo_warcs / "govuk-BL-20140325121225068-00000.warc.gz")],
               storage_options=secret)
    run(cfg)
    runs = httpx.post(f"{prefect_api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 1}).json()
    stored = runs[0]["parameters"]["config"]["storage_options"]
    assert stored == {"auto_mkdir": True, "secret": "***", "client_kwargs": {"aws_session_token": "***"}}
    assert "s3cr3t-value" not in json.dumps(runs[0]) and "t0ken" not in json.dumps(runs[0])
    # The tasks worked with the real options (fsspec caches the instances they created).
    live = [fs.storage_options for fs in fsspec.implementations.local.LocalFileSystem._cache.values()]
    assert any(o.get("secret") == "s3cr3t-value" for o in live)
