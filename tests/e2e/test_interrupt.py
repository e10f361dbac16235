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
        deadline = time.monotonic() + 300
        # The first shard's done-marker (whatever the markers' folder is called).
        while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("documents/*done*/*.json")):
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


# ---- SIGTERM (timeout, Kubernetes, Slurm, Prefect cancellation) -------------------------------

STUCK_RUN = """
import json, os, re, socket, subprocess, sys, time
from winnow.cli import _in_thread, _interruptible
lock = sys.argv[1]
with open(lock, "w") as fh:
    json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
with _interruptible(lock):
    if sys.argv[2] == "stuck":  # a C call that holds the interpreter lock: re on (a+)+$ never returns
        _in_thread(lambda: re.match(r"(a+)+$", "a" * 64 + "b"))
    else:
        _in_thread(lambda: time.sleep(600))
"""


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie (this machine's init may not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize("mode", ["waiting", "stuck"])
def test_sigterm_stops_the_run_also_when_its_main_thread_cannot_answer(mode, tmp_path):
    """The CLI's stop path without Prefect: a run waiting on its work answers SIGTERM itself
    (status 143); one whose interpreter lock is held by C code is stopped by the watchdog within
    its grace (death by SIGTERM: 143 to a shell). Either way one line, children killed; the
    watchdog also removes the run's local lock."""
    script = tmp_path / "run.py"
    script.write_text(STUCK_RUN)
    lock = tmp_path / ".winnow-lock.json"
    proc = subprocess.Popen([str(BIN / "python"), str(script), str(lock), "stuck" if mode == "stuck" else "sleep"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())
        time.sleep(1)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert stderr.strip() == "interrupted; rerun to resume", stderr
    assert took < 5, f"took {took:.1f} s"
    time.sleep(0.5)
    assert _gone(child)
    if mode == "stuck":
        assert proc.returncode == -signal.SIGTERM  # the default action: a shell reports 143
        assert not lock.exists()
    else:
        assert proc.returncode == 143


@pytest.fixture(scope="module")
def stalling(tmp_path_factory) -> Path:
    """A WARC whose one page (100,000 nested <div>s) stalls HTML extraction for minutes; its
    folder sorts after the crawl's, so its shard is the last and the others keep their names."""
    from helpers.hostile_pages import hostile_warc

    folder = tmp_path_factory.mktemp("zz-stalling")
    hostile_warc(folder / "stall.warc.gz", names=["nested-divs"])
    return folder


def test_sigterm_mid_extraction_exits_143_with_one_line_and_the_rerun_resumes(tmp_path, demo_config, crawl,
                                                                               stalling, reference,
                                                                               prefect_server_api):
    # A long extraction budget, where there is one, keeps the page stalling (not timed out).
    from winnow.tasks.ingest import IngestConfig

    ingest = {"extract_timeout_s": 900} if "extract_timeout_s" in IngestConfig.model_fields else {}
    cfg = demo_config(tmp_path / "c.yaml", input=[str(crawl), str(stalling)], runner={"kind": "threads", "workers": 2},
                      ingest=ingest)
    env = prefect_env(tmp_path / "home", prefect_server_api)
    out = tmp_path / "out"
    n_ordinary = len(list(crawl.iterdir()))
    proc = subprocess.Popen([str(BIN / "winnow"), "run", str(cfg), "-o", str(out)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        done = out / "documents"
        deadline = time.monotonic() + 400
        # Every ordinary shard finished: what runs now is the stalling page's shard.
        while proc.poll() is None and time.monotonic() < deadline and \
                len([p for p in done.glob("*done*/*.json")]) < n_ordinary:
            time.sleep(0.2)
        time.sleep(2)
        assert proc.poll() is None, "the run ended before SIGTERM"
        from winnow.watchdog import descendants

        children = descendants(proc.pid)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # to the run alone, as Kubernetes and `timeout` send it
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        stop_group(proc)
    assert proc.returncode in (143, -signal.SIGTERM), stderr[-3000:]
    assert took < 5, f"took {took:.1f} s to stop"
    after = stderr[stderr.index("interrupted; rerun to resume"):]
    assert after.count("\n") <= 3, after
    assert "Crash detected" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert not (out / ".winnow-lock.json").exists()
    time.sleep(0.5)
    assert all(_gone(pid) for pid in children)
    # The stalling page's shard was never marked done (its page is not "lost" as a crash).
    assert len([p for p in done.glob("*done*/*.json")]) == n_ordinary
    cfg = demo_config(tmp_path / "c.yaml", input=[str(crawl)], runner={"kind": "threads", "workers": 2},
                      ingest=ingest)
    rerun = winnow("run", str(cfg), "-o", str(out), env=env)
    assert "already done" in rerun.stderr
    assert output_of(str(out)) == reference


def test_an_output_folder_deleted_mid_run_is_said_once_and_stops_the_run(tmp_path, demo_config, crawl,
                                                                         prefect_server_api):
    cfg = demo_config(tmp_path / "c.yaml", input=[str(crawl)], runner={"kind": "threads", "workers": 2})
    out = tmp_path / "out"
    proc = subprocess.Popen([str(BIN / "winnow"), "run", str(cfg), "-o", str(out)], cwd=REPO,
                            env=prefect_env(tmp_path / "home", prefect_server_api), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("documents/*done*/*.json")):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the folder was deleted"
        shutil.rmtree(out)
        deleted = time.monotonic()
        _, stderr = proc.communicate(timeout=120)
        took = time.monotonic() - deleted
    finally:
        stop_group(proc)
    assert proc.returncode == 1, stderr[-3000:]
    assert took < 20, f"took {took:.0f} s"  # one heartbeat (15 s), not minutes of retried writes
    assert stderr.count("disappeared during the run") == 1, stderr[-3000:]
    assert f"error: the output folder {out} disappeared during the run" in stderr
    assert "taken by another run" not in stderr and "Traceback" not in stderr
