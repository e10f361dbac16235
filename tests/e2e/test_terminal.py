"""What a user sees on a real terminal (a tmux pane): Ctrl-C finishes the progress line, a
run that reads nothing ends in one line, worker start-up is announced while it happens, and
no third-party noise reaches the screen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.servers import BIN, REPO, prefect_env
from helpers.terminal import have_tmux, terminal

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_tmux(), reason="tmux is not installed (make system-deps)")]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crawl")
    for copy in range(3):
        for f in sorted((REPO / "examples" / "data" / "warc").iterdir()):
            shutil.copy(f, folder / f"{copy}-{f.name}")
    return folder


def _lines(screen: str) -> list[str]:
    return [ln.rstrip() for ln in screen.splitlines() if ln.strip()]


def test_ctrl_c_finishes_the_progress_line(tmp_path, demo_config, crawl, prefect_server_api):
    cfg = demo_config(tmp_path / "c.yaml", input=[str(crawl)], runner={"kind": "threads", "workers": 2})
    env = prefect_env(tmp_path / "home", prefect_server_api, TERM="xterm-256color")
    with terminal([str(BIN / "winnow"), "run", str(cfg), "-o", str(tmp_path / "out")], env, REPO, tmp_path) as pane:
        # A few shards in: the extraction sandboxes have started (one starting as Ctrl-C lands
        # prints its own KeyboardInterrupt until winnow/sandbox.py starts it outside the
        # terminal's process group).
        pane.wait_for(r"curate\s.*\s([3-9]|[12]\d)/36\b")
        pane.send("C-c")
        pane.wait_for(r"^EXIT=\d+", timeout=60)
        lines = _lines(pane.screen())
    assert "EXIT=130" in lines, lines[-10:]  # on a line of its own: the bar's line was finished
    at = lines.index("interrupted; rerun to resume")
    assert lines[at + 1:] == ["EXIT=130"], lines[-10:]
    assert "curate" in lines[at - 1] and "/36" in lines[at - 1]  # the last bar, then the note below it
    assert not [ln for ln in lines if "Traceback" in ln or "KeyboardInterrupt" in ln]


def test_processes_runner_on_a_terminal_says_what_it_starts_and_a_run_that_reads_nothing_is_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.warc.gz").write_bytes(b"this is not a warc file at all")
    env = prefect_env(tmp_path / "home", TERM="xterm-256color")  # its own temporary server, as a user's
    command = [str(BIN / "winnow"), "run", str(REPO / "examples" / "demo.yaml"), "-i", str(tmp_path / "in"),
               "-o", str(tmp_path / "out"), "--runner", "processes", "--workers", "2"]
    with terminal(command, env, REPO, tmp_path) as pane:
        pane.wait_for(r"starting a temporary Prefect server")
        pane.wait_for(r"starting 2 worker processes")
        pane.wait_for(r"^EXIT=\d+", timeout=300)
        lines = _lines(pane.screen())
    assert lines[-1] == "EXIT=1", lines
    errors = [ln for ln in lines if ln.startswith("error") or "Traceback" in ln or "| ERROR" in ln]
    assert len(errors) == 1 and errors[0].startswith("error: read nothing: 0 documents"), lines
    assert not [ln for ln in lines if "docs.prefect.io" in ln or "distributed." in ln]
