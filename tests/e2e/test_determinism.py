"""Same input, same output: extraction is a pure function of the page, so threads, processes,
Dask (default extractor) and a killed-then-resumed run write identical files, for both extractors. (trafilatura's
deduplicate=True kept a process-wide cache: a thread runner gave [96, 96, 96, 55, 55, 55]
documents on six copies of one WARC where processes gave [96] x 6.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml
from helpers.servers import BIN, REPO, prefect_env, stop_group, winnow

pytestmark = pytest.mark.slow
WARC = REPO / "examples" / "data" / "warc" / "govuk-BL-20140325121225068-00000.warc.gz"


def _config(tmp_path, extractor: str, runner: str) -> str:
    crawl = tmp_path / "crawl"
    if not crawl.exists():
        crawl.mkdir()
        for k in range(6):
            shutil.copy(WARC, crawl / f"copy-{k}.warc.gz")
    cfg = {"input": [str(crawl)], "output": str(tmp_path / f"out-{runner}"), "shard_size_mb": 0,
           "runner": {"kind": runner, "workers": 2, "retries": 0}, "ingest": {"extractor": extractor},
           "quality": {"enabled": False}, "lid": {"keep": []}}
    path = tmp_path / f"{runner}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _files(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "documents").glob("part-*.parquet"))}


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_every_runner_and_a_resumed_run_write_identical_files(extractor, tmp_path, prefect_server_api):
    import pyarrow.parquet as pq

    env = prefect_env(tmp_path / "home", prefect_server_api)
    outputs = {}
    # Dask workers are processes like the process pool's: once, with the default extractor.
    runners = ("threads", "processes", "dask") if extractor == "resiliparse" else ("threads", "processes")
    for runner in runners:
        winnow("run", _config(tmp_path, extractor, runner), env=env)
        outputs[runner] = _files(tmp_path / f"out-{runner}")
    counts = [pq.read_metadata(tmp_path / "out-threads" / "documents" / name).num_rows for name in outputs["threads"]]
    assert len(counts) == 6 and len(set(counts)) == 1 and counts[0] > 20, counts
    assert all(files == outputs["threads"] for files in outputs.values())

    # Killed after two shards, then resumed: the same files.
    cfg = _config(tmp_path, extractor, "threads")
    killed = tmp_path / "killed.yaml"
    data = yaml.safe_load(open(cfg))
    data["output"] = str(tmp_path / "out-killed")
    data["runner"]["workers"] = 1
    killed.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([str(BIN / "winnow"), "run", str(killed)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        done = tmp_path / "out-killed" / "documents" / "__done__"
        while proc.poll() is None and time.monotonic() < deadline:
            if done.exists() and len(list(done.glob("*.json"))) >= 2:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(30)
    finally:
        stop_group(proc)
    winnow("run", str(killed), env=env)
    assert _files(tmp_path / "out-killed") == outputs["threads"]
