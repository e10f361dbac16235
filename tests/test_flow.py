"""The curate flow end to end on the demo WARCs, on a real (temporary) Prefect server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import DEMO_WARCS, REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _cfg(tmp_path, **extra):
    from winnow.config import WinnowConfig

    return WinnowConfig.model_validate({
        "input": [str(DEMO_WARCS)], "output": str(tmp_path / "out"),
        "runner": {"kind": "threads", "workers": 2, "retries": 0}, "shard_size_mb": 0, **extra,
    })


def test_flow_writes_shards_summary_and_artifacts(prefect_server, tmp_path):
    from flows.curate import run_curate

    cfg = _cfg(tmp_path)
    summary = run_curate(cfg)
    shards = sorted((tmp_path / "out" / "documents").glob("part-*.parquet"))
    assert len(shards) == len(list(DEMO_WARCS.iterdir())) == summary["shards"]
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
    table = pq.read_table(shards[0])
    annotations = dict(table.column("annotations").to_pylist()[0])
    assert {"lid.lang", "lid.score", "quality.failed"} <= set(annotations)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["rows"] == summary["rows"]
    assert "dropped: revisit" in (tmp_path / "out" / "summary.md").read_text()
    assert not list((tmp_path / "out").rglob(".*tmp-*"))

    import httpx
    from prefect.settings import PREFECT_API_URL

    resp = httpx.get(f"{PREFECT_API_URL.value()}/artifacts/winnow-funnel/latest")
    resp.raise_for_status()
    assert resp.json()["type"] == "markdown"
    assert "ingest" in resp.json()["data"] and "truncated_record" in resp.json()["data"]

    # Rerun: every shard is skipped, same totals. Remove one marker: only that shard is redone.
    again = run_curate(cfg)
    assert again["shards_skipped_as_done"] == summary["shards"] and again["rows"] == summary["rows"]
    os.remove(tmp_path / "out" / "documents" / "_done" / "part-00003.parquet.json")
    third = run_curate(cfg)
    assert third["shards_skipped_as_done"] == summary["shards"] - 1
    assert third["stages"] == summary["stages"] | {"ingest": third["stages"]["ingest"]}
    assert third["stages"]["ingest"]["docs_out"] == ingest["docs_out"]


def test_one_failing_shard_does_not_stop_the_others(prefect_server, tmp_path, monkeypatch):
    import tasks.shard as shard_mod
    from flows.curate import ShardFailures, run_curate

    real = shard_mod.ingest_warc

    def flaky(path, *args, **kwargs):
        if "clueweb" in path:
            raise RuntimeError("simulated worker crash")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shard_mod, "ingest_warc", flaky)
    cfg = _cfg(tmp_path)
    with pytest.raises(ShardFailures, match="1 of 12 shard"):
        run_curate(cfg)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["shards_failed"] == 1 and "clueweb" in summary["failures"][0]
    assert summary["rows"] > 10
    monkeypatch.setattr(shard_mod, "ingest_warc", real)
    fixed = run_curate(cfg)
    assert fixed["shards_skipped_as_done"] == 11 and fixed["shards_failed"] == 0
    clueweb = sorted(DEMO_WARCS.iterdir()).index(DEMO_WARCS / "clueweb09-ja-quirk.warc.gz")
    redone = tmp_path / "out" / "documents" / f"part-{clueweb:05d}.parquet"
    assert fixed["rows"] == summary["rows"] + pq.read_metadata(redone).num_rows
    assert fixed["stages"]["ingest"]["docs_in"] == summary["stages"]["ingest"]["docs_in"] + 29


def test_demo_command_from_readme(tmp_path):
    """`winnow run examples/demo.yaml` as a user runs it, in a separate process."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    winnow = shutil.which("winnow", path=os.path.dirname(sys.executable)) or "winnow"
    proc = subprocess.run([winnow, "run", "examples/demo.yaml", "--output", str(tmp_path / "demo")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "documents in" in proc.stderr and str(tmp_path / "demo") in proc.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    # The 12 small demo files are grouped into ~1 MB shards (shard_size_mb's default).
    assert len(list((tmp_path / "demo" / "documents").glob("part-*.parquet"))) == summary["shards"] > 1
    assert (tmp_path / "demo" / "report.html").is_file()


def test_dedup_and_pack_resume_after_a_crash_between_stages(prefect_server, tmp_path):
    import shutil

    from flows.curate import run_curate

    # single_task_below 0: the staged dedup, one task per shard batch, band and merge.
    cfg = _cfg(tmp_path, dedup={"enabled": True, "partitions": 2, "single_task_below": 0},
               pack={"enabled": True, "seq_len": 512})
    first = run_curate(cfg)
    out = tmp_path / "out"
    assert first["dedup"]["removed"] >= 1 and first["packed"]["sequences"] > 0
    deduped_rows = sum(pq.read_metadata(p).num_rows for p in (out / "deduped").glob("part-*.parquet"))
    assert deduped_rows == first["stages"]["dedup"]["docs_out"] == first["packed"]["documents"]
    packed = {p.name: pq.read_table(p).to_pylist() for p in (out / "packed").glob("train-*.parquet")}

    # Crash after the signatures: later stages' outputs and markers are gone.
    sig_file = out / "dedup" / "bands" / "band=00" / "range=0001" / "part-00000.parquet"
    sig_mtime = sig_file.stat().st_mtime_ns
    (out / "dedup" / "_done" / "band-03-0001").unlink()
    (out / "dedup" / "components" / "band=03-range=0001.parquet").unlink()
    shutil.rmtree(out / "dedup" / "merged")
    (out / "dedup" / "_done" / "clusters.json").unlink()
    shutil.rmtree(out / "deduped")
    shutil.rmtree(out / "packed")
    again = run_curate(cfg)
    assert sig_file.stat().st_mtime_ns == sig_mtime  # finished stages are not redone
    assert again["dedup"] == first["dedup"]
    assert {p.name: pq.read_table(p).to_pylist() for p in (out / "packed").glob("train-*.parquet")} == packed
    # A small corpus runs the same steps in one task (the default): same clusters, same sequences.
    single = run_curate(_cfg(tmp_path / "single", dedup={"enabled": True, "partitions": 2},
                             pack={"enabled": True, "seq_len": 512}))
    assert single["dedup"] == first["dedup"]
    assert {p.name: pq.read_table(p).to_pylist()
            for p in (tmp_path / "single" / "out" / "packed").glob("train-*.parquet")} == packed


def test_rephrase_in_the_flow_against_a_local_server(prefect_server, tmp_path):
    from flows.curate import run_curate
    from openai_server import FakeLLM

    with FakeLLM() as llm:
        cfg = _cfg(tmp_path, input=[str(DEMO_WARCS / "govuk-BL-20140325121225068-00000.warc.gz")],
                   rephrase={"enabled": True, "base_url": llm.base_url, "model": "fake", "styles": ["medium"]},
                   pack={"enabled": True, "seq_len": 1024})
        summary = run_curate(cfg)
        requests = sum(llm.requests.values())
        again = run_curate(cfg)  # finished shards are skipped: no new requests
        assert sum(llm.requests.values()) == requests
    out = tmp_path / "out"
    table = pq.read_table(out / "rephrased" / "part-00000.parquet").to_pylist()
    real = [r for r in table if "#wrap-" not in r["id"]]
    synthetic = [r for r in table if "#wrap-" in r["id"]]
    assert len(real) == summary["rows"] and len(synthetic) == len(real)  # 1:1
    report = [json.loads(x) for x in (out / "rephrased" / "_report" / "part-00000.parquet.jsonl").read_text().splitlines()]
    assert len(report) == len(real) and all(r["status"] == "ok" for r in report)
    assert summary["packed"]["documents"] == len(table) == again["packed"]["documents"]


def test_derived_outputs_are_redone_when_a_curated_shard_is_redone(prefect_server, tmp_path):
    from flows.curate import run_curate

    cfg = _cfg(tmp_path, dedup={"enabled": True})
    first = run_curate(cfg)
    out = tmp_path / "out"
    marker = out / "dedup" / "_done" / "signatures-00003"
    assert marker.exists()
    os.remove(out / "documents" / "_done" / "part-00003.parquet.json")  # shard 3 will be redone
    second = run_curate(cfg)
    assert second["shards_skipped_as_done"] == first["shards"] - 1
    deduped = json.loads((out / "deduped" / "_done" / "part-00003.parquet.json").read_text())
    curated = json.loads((out / "documents" / "_done" / "part-00003.parquet.json").read_text())
    assert deduped["input_stamp"] == curated["finished_at"]  # the dedup output follows the new shard
    assert second["dedup"] == first["dedup"]


def test_small_files_grouped_into_shards(prefect_server, tmp_path):
    from flows.curate import run_curate

    one_each = run_curate(_cfg(tmp_path / "a"))
    grouped = run_curate(_cfg(tmp_path / "b", shard_size_mb=1.0))
    assert one_each["shards"] == 12 and 1 < grouped["shards"] < 12
    assert grouped["rows"] == one_each["rows"]
    assert grouped["stages"]["ingest"]["docs_in"] == one_each["stages"]["ingest"]["docs_in"]
    again = run_curate(_cfg(tmp_path / "b", shard_size_mb=1.0))
    assert again["shards_skipped_as_done"] == grouped["shards"]
