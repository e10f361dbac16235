"""One run per output folder: exclusive, names its holder, detects a dead holder (local and S3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from winnow.lock import LOCK_NAME, LockHeld, OutputLock


def test_second_lock_refuses_and_names_the_holder(tmp_path):
    with OutputLock(str(tmp_path), note="first run"):
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid()
        with pytest.raises(LockHeld, match=rf"in use by another winnow run \(pid {os.getpid()} on .*first run"):
            OutputLock(str(tmp_path)).acquire()
    assert not (tmp_path / LOCK_NAME).exists()  # released
    with OutputLock(str(tmp_path)):
        pass


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    proc = subprocess.run([sys.executable, "-c", f"""
import os
from winnow.lock import OutputLock
OutputLock({str(tmp_path)!r}).acquire()
os._exit(0)  # dies holding the lock, as kill -9 would leave it
"""], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / LOCK_NAME).exists()
    lock = OutputLock(str(tmp_path)).acquire()
    assert lock.taken_over is not None and lock.taken_over["pid"] != os.getpid()
    lock.release()


def test_a_lock_whose_heartbeat_stopped_is_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"token": "x", "host": "another-host", "pid": 1,
                                                  "heartbeat": time.time() - 3600, "started": time.time() - 7200}))
    with OutputLock(str(tmp_path), stale_after_s=120) as lock:
        assert lock.taken_over["host"] == "another-host"
    (tmp_path / LOCK_NAME).write_text(json.dumps({"token": "y", "host": "another-host", "pid": 1,
                                                  "heartbeat": time.time(), "started": time.time()}))
    with pytest.raises(LockHeld, match="another-host"):
        OutputLock(str(tmp_path)).acquire()


def test_heartbeat_keeps_a_long_run_alive(tmp_path):
    with OutputLock(str(tmp_path), heartbeat_s=0.1) as lock:
        first = json.loads((tmp_path / LOCK_NAME).read_text())["heartbeat"]
        time.sleep(0.5)
        assert json.loads((tmp_path / LOCK_NAME).read_text())["heartbeat"] > first
        assert lock.read()["token"] == lock.token


def test_s3_lock_is_exclusive(s3_server):
    out = "s3://winnow-test/locked-out"
    with OutputLock(out, s3_server):
        with pytest.raises(LockHeld, match="in use by another winnow run"):
            OutputLock(out, s3_server).acquire()
    with OutputLock(out, s3_server):
        pass


def test_a_lock_taken_over_by_another_run_is_noticed_and_release_leaves_it(tmp_path):
    out = tmp_path / "out"
    lock = OutputLock(str(out), heartbeat_s=0.05).acquire()
    path = out / LOCK_NAME
    theirs = {**json.loads(path.read_text()), "token": "another-run", "pid": os.getpid()}
    path.write_text(json.dumps(theirs))  # what a run that judged this one dead would write
    deadline = time.monotonic() + 5
    while not lock.lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lock.lost
    lock.release()
    assert json.loads(path.read_text())["token"] == "another-run"  # the newer holder's lock stays


def test_release_waits_for_the_heartbeat_so_the_lock_never_comes_back(tmp_path):
    out = tmp_path / "out"
    for _ in range(20):
        lock = OutputLock(str(out), heartbeat_s=0.001).acquire()
        time.sleep(0.01)
        lock.release()
        time.sleep(0.01)
        assert not (out / LOCK_NAME).exists()


def test_a_deleted_output_folder_is_reported_once_as_gone(tmp_path, caplog):
    """The heartbeat finds the lock file gone with its folder: it says the output disappeared
    (not that another run took the lock), once, and calls what stops the run."""
    import shutil

    from winnow import lock as lock_module

    out = tmp_path / "out"
    heard: list[str] = []
    lock_module._on_vanished.append(heard.append)
    try:
        with OutputLock(str(out), heartbeat_s=0.1) as held:
            shutil.rmtree(out)
            deadline = time.monotonic() + 10
            while not heard and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # a second beat would report again
        assert heard == [held.vanished] and len(heard) == 1
        assert f"the output folder {out} disappeared during the run" in heard[0]
        assert not held.lost and "taken by another run" not in caplog.text
        assert not out.exists()  # releasing did not recreate the folder
    finally:
        lock_module._on_vanished.remove(heard.append)
