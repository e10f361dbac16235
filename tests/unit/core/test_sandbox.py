"""winnow.sandbox: items run in a real child process, under a deadline and a memory limit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from winnow.extract import extract_page
from winnow.sandbox import ChildError, Sandbox, SandboxError
from winnow.stats import StageStats
from winnow.warc import iter_http_responses

REPO = Path(__file__).resolve().parents[3]
CC_SAMPLE = REPO / "examples" / "data" / "warc" / "cc-main-2020-34-sample.warc.gz"


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has stopped running
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, within_s: float) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def test_a_stuck_item_is_killed_and_the_next_item_gets_a_new_worker():
    with Sandbox("time:sleep", timeout_s=0.5) as sb:
        assert sb(0) is None
        first = sb.pid
        t0 = time.monotonic()
        with pytest.raises(SandboxError) as err:
            sb(60)
        assert err.value.reason == "timeout"
        assert time.monotonic() - t0 < 3
        assert first is not None and _wait_gone(first, 2)
        assert sb(0) is None
        assert sb.pid != first and sb.starts == 2


def test_a_quadratic_decoder_is_stopped_at_the_deadline():
    # Python's punycode decoder is quadratic: this takes seconds to minutes without a bound.
    with Sandbox("codecs:decode", timeout_s=1) as sb:
        t0 = time.monotonic()
        with pytest.raises(SandboxError, match="within 1 s"):
            sb(b"a-" + b"b" * 400_000, "punycode")
        assert time.monotonic() - t0 < 4
        assert sb(b"abc", "ascii") == "abc"


def test_memory_over_the_limit_is_reported_and_the_worker_replaced():
    with Sandbox("builtins:bytearray", timeout_s=10, memory_mb=300) as sb:
        assert len(sb(1 << 20)) == 1 << 20
        with pytest.raises(SandboxError) as err:
            sb(1 << 30)
        assert err.value.reason == "memory" and "300 MB" in str(err.value)
        assert len(sb(10)) == 10 and sb.starts == 2


def test_an_ordinary_exception_is_returned_and_the_worker_kept():
    with Sandbox("codecs:decode", timeout_s=5) as sb:
        with pytest.raises(ChildError) as err:
            sb(b"\xff", "utf-8")
        assert err.value.type_name == "UnicodeDecodeError"
        assert sb(b"ok", "utf-8") == "ok" and sb.starts == 1


def test_a_worker_that_dies_is_a_crash_and_is_replaced():
    with Sandbox("os:_exit", timeout_s=5) as sb:
        with pytest.raises(SandboxError) as err:
            sb(3)
        assert err.value.reason == "crash" and "exit status 3" in str(err.value)
    with Sandbox("os:abort", timeout_s=5) as sb:
        with pytest.raises(SandboxError, match="SIGABRT"):
            sb()


def test_a_target_that_cannot_be_imported_fails_at_start():
    with pytest.raises(RuntimeError, match="failed to start: ModuleNotFoundError"), \
            Sandbox("winnow.no_such_module:f", timeout_s=1) as sb:
        sb()


def test_printing_in_the_target_does_not_corrupt_the_results():
    with Sandbox("builtins:print", timeout_s=5) as sb:
        assert sb("noise on stdout") is None
        assert sb("more", "noise") is None


def test_the_worker_dies_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\n"
        "from winnow.sandbox import Sandbox\n"
        "sb = Sandbox('time:sleep', timeout_s=600)\n"
        "sb(0)\n"
        "print(sb.pid, flush=True)\n"
        "sb(600)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(0.2)  # the child is inside sleep(600), not reading its pipe
        assert not _gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        assert _wait_gone(child, 5), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_worker_exits_when_its_pipe_closes():
    sb = Sandbox("time:sleep", timeout_s=5)
    sb(0)
    proc = sb._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(5) == 0
    sb.close()


def test_close_ends_the_worker_and_a_later_item_starts_one():
    sb = Sandbox("time:sleep", timeout_s=5)
    sb(0)
    pid = sb.pid
    sb.close()
    assert pid is not None and _wait_gone(pid, 2) and sb.pid is None
    sb(0)
    assert sb.starts == 2
    sb.close()


def test_ctrl_c_to_the_process_group_leaves_the_worker_to_the_parent():
    with Sandbox("time:sleep", timeout_s=5) as sb:
        sb(0)
        assert sb.pid is not None
        os.kill(sb.pid, signal.SIGINT)
        assert sb(0) is None and sb.starts == 1


def test_extraction_results_are_identical_to_inline():
    """Every page of a real Common Crawl WARC, both extractors: the same text, encoding and
    counters through the worker as in this process."""
    with open(CC_SAMPLE, "rb") as fh:
        pages = [(r.body, r.charset) for r in iter_http_responses(fh, StageStats(), "cc", 10_000_000)]
    assert len(pages) == 16
    for extractor in ("resiliparse", "trafilatura"):
        with Sandbox("winnow.extract:extract_page", timeout_s=30) as sb:
            for body, charset in pages:
                assert sb(body, charset, extractor) == extract_page(body, charset, extractor)



def test_it_runs_inside_a_daemonic_worker():
    """winnow's process runners may run shards in daemonic processes, which may not have
    multiprocessing children; a subprocess is allowed. Spawned, as Dask starts its workers: a
    fork of this test session would inherit whatever earlier tests left in it."""
    from helpers.daemon_target import sandbox_len

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=sandbox_len, args=(q,), daemon=True)
    p.start()
    assert q.get(timeout=120) == 3
    p.join(30)
    assert p.exitcode == 0


def test_an_item_interrupted_by_ctrl_c_leaves_no_stale_answer():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        with Sandbox("builtins:pow", timeout_s=30) as sb:
            assert sb(2, 3) == 8
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(KeyboardInterrupt):
                sb(7, 10**7)  # a long computation in the worker
            assert sb(2, 5) == 32 and sb.starts == 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_forked_copy_neither_uses_nor_ends_its_parents_worker():
    with Sandbox("builtins:len", timeout_s=30) as sb:
        assert sb(b"ab") == 2
        parent_worker = sb.pid
        child = os.fork()
        if child == 0:  # pragma: no cover - the forked side reports through its exit status
            code = 1
            try:
                code = 0 if sb(b"abc") == 3 and sb.pid != parent_worker else 2
                sb.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sb.pid == parent_worker and sb(b"abcd") == 4
