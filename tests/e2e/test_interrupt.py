"""Ctrl-C: a real run gets SIGINT (to its whole process group, as a terminal sends it), exits
within seconds with one line and status 130, leaves nothing half-written, and a rerun resumes
to the output of an undisturbed run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.servers import BIN, REPO, output_of, prefect_env, stop_group, winnow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crawl")
    for copy in range(3):  # enough shards that the interrupt lands in the middle
        for f in sorted((REPO / "examples" / "data" / "warc").iterdir()):
            shutil.copy(f, folder / f"{copy}-{f.name}")
    return folder


@pytest.fixture(scope="module")
def reference(crawl, tmp_path_factory, prefect_server_api, demo_config) -> dict:
    """An undisturbed run (the runner does not change the output: tests/e2e/test_determinism.py)."""
    tmp = tmp_path_factory.mktemp("reference")
    cfg = demo_config(tmp / "c.yaml", input=[str(crawl)])
    winnow("run", str(cfg), "-o", str(tmp / "out"), env=prefect_env(tmp / "home", prefect_server_api))
    return output_of(str(tmp / "out"))


@pytest.mark.parametrize("runner", ["threads", "processes"])
def test_sigint_exits_fast_with_one_line_and_the_rerun_resumes(runner, tmp_path, demo_config, crawl, reference):
    cfg = demo_config(tmp_path / "c.yaml", input=[str(crawl)], runner={"kind": runner, "workers": 2})
    env = prefect_env(tmp_path / "home")  # no PREFECT_API_URL: winnow's own temporary server
    out = tmp_path / "out"
    proc = subprocess.Popen([str(BIN / "winnow"), "run", str(cfg), "-o", str(out)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        done = out / "documents" / "_done"
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not (done.exists() and any(done.iterdir())):
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the interrupt"
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        stop_group(proc)
    assert proc.returncode == 130, stderr[-3000:]
    assert took < 5, f"took {took:.1f} s to stop"
    after = stderr[stderr.index("interrupted; rerun to resume"):]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert not (out / ".winnow-lock.json").exists()  # released on the way out
    time.sleep(1)
    assert after.count("\n") <= 3
    rerun = winnow("run", str(cfg), "-o", str(out), env=env)
    assert "already done" in rerun.stderr
    assert output_of(str(out)) == reference
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
