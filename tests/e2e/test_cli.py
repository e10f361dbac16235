"""The command line as a user meets it: help, versions, listings, and every refusal before work
is one line, exit 2, no traceback, and no Prefect server started."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import fsspec
import pytest
import yaml

from winnow.stage import registered


def cli(*args: str, cwd=None, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "winnow.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def refused(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr
    assert "Starting temporary server" not in proc.stderr  # refused before any work
    for needle in needles:
        assert needle in proc.stderr, proc.stderr[-3000:]


def test_help_version_and_stages():
    proc = cli("run", "--help")
    assert proc.returncode == 0 and "--output" in proc.stdout and "shard_size_mb" in proc.stdout
    assert "grouped" in cli("--help").stdout
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("winnow 0.")
    stages = cli("stages")
    assert stages.returncode == 0 and not stages.stderr.strip()
    for stage in registered():  # the registry drives the listing
        assert stage.name in stages.stdout and stage.summary in stages.stdout
    assert "rephrase.base_url" in stages.stdout and "pack.megatron" in stages.stdout
    assert "PydanticUndefined" not in stages.stdout and "input = (required)" in stages.stdout
    assert "shard_size_mb" in stages.stdout and "grouped" in stages.stdout


def test_config_errors_exit_2_without_traceback(tmp_path, repo):
    path = tmp_path / "c.yaml"
    path.write_text("input: a\noutput: b\nbogus_field: 1\n")
    refused(cli("run", str(path)), "bogus_field: unknown field")
    refused(cli("run", "/nonexistent.yaml"), "config file not found")
    refused(cli("run", str(repo / "examples" / "demo.yaml"), "--stages", "dedupe"), "unknown stage")


def test_missing_input_and_inputs_of_no_usable_kind(tmp_path, repo):
    demo = str(repo / "examples" / "demo.yaml")
    refused(cli("run", demo, "-i", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "o")), "no such file or directory")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("hello")
    (tmp_path / "txt" / "b.html").write_text("<p>hi</p>")
    refused(cli("run", demo, "-i", str(tmp_path / "txt"), "-o", str(tmp_path / "o")),
            "matched no WARC", "skipped 2 file(s): 2 unsupported format (a.txt, b.html)")


def test_a_run_that_reads_nothing_fails(tmp_path, repo, cli_env):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.warc.gz").write_bytes(b"this is not a warc file at all")
    (tmp_path / "in" / "notes.txt").write_text("x")
    proc = cli("run", str(repo / "examples" / "demo.yaml"), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o"),
               env=cli_env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.count("skipped 1 file(s): 1 unsupported format (notes.txt)") == 1  # said once, not twice
    final = proc.stderr[proc.stderr.rindex("error:"):]
    assert "read nothing: 0 documents in 1 input file(s) (not_a_warc 1)" in final and "Traceback" not in final


def test_unwritable_outputs_are_refused_in_one_line(tmp_path, repo):
    demo = str(repo / "examples" / "demo.yaml")
    started = time.monotonic()
    refused(cli("run", demo, "-o", "/proc/x"), "cannot write to output /proc/x")
    (tmp_path / "afile").write_text("x")
    refused(cli("run", demo, "-o", str(tmp_path / "afile")), "is a file, not a folder")
    assert time.monotonic() - started < 60


def test_a_missing_list_file_fails_before_any_shard(tmp_path, demo_config):
    cfg = demo_config(tmp_path / "c.yaml")
    data = yaml.safe_load(cfg.read_text())
    data["ingest"]["url_filter"]["blocked_domains_file"] = str(tmp_path / "blocklists" / "domains.txt")
    cfg.write_text(yaml.safe_dump(data))
    refused(cli("run", str(cfg), "-o", str(tmp_path / "out")),
            f"ingest.url_filter.blocked_domains_file: file not found: {tmp_path}/blocklists/domains.txt")
    assert not (tmp_path / "out" / "documents").exists()


@pytest.mark.slow
def test_s3_problems_are_one_line(tmp_path, s3_server, demo_config):
    fs = fsspec.filesystem("s3", **s3_server)
    fs.put_file(str(tmp_path.parent), "winnow-test/x") if False else None
    cfg = demo_config(tmp_path / "c.yaml", storage_options=s3_server)
    refused(cli("run", str(cfg), "-o", "s3://winnow-tset/out"), "bucket 'winnow-tset' does not exist")
    refused(cli("run", str(cfg), "-i", "s3://winnow-tset/crawl/", "-o", str(tmp_path / "o")), "winnow-tset")
    fs.invalidate_cache()
    assert not fs.exists("winnow-tset")
    bad = dict(s3_server, client_kwargs={"endpoint_url": "http://127.0.0.1:9"},
               config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}})
    refused(cli("run", str(cfg), "-o", "s3://winnow-test/out", "--storage-options", json.dumps(bad)),
            "cannot reach the storage endpoint")


@pytest.mark.slow
def test_report_reads_s3_with_storage_options(tmp_path, s3_server):
    fs = fsspec.filesystem("s3", **s3_server)
    summary = {"output": "s3://winnow-test/rep/documents", "rows": 3, "shards": 1, "stages": {}}
    fs.pipe_file("winnow-test/rep/summary.json", json.dumps(summary).encode())
    proc = cli("report", "s3://winnow-test/rep", "--storage-options", json.dumps(s3_server))
    assert proc.returncode == 0, proc.stderr
    assert b"<b>3</b> documents" in fs.cat_file("winnow-test/rep/report.html")
    refused(cli("report", "s3://winnow-test/none"), "")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"input": ["x"], "output": "s3://winnow-test/rep", "storage_options": s3_server}))
    assert cli("report", "s3://winnow-test/rep", "--config", str(cfg)).returncode == 0


@pytest.mark.slow
def test_demo_command_from_readme(tmp_path, run_winnow, own_server_env, repo):
    """`winnow run examples/demo.yaml`, as a user runs it (its own temporary server), in a separate process."""
    proc = run_winnow("run", "examples/demo.yaml", "--output", str(tmp_path / "demo"), env=own_server_env)
    assert "Starting temporary server" in proc.stderr
    assert "documents in" in proc.stderr and str(tmp_path / "demo") in proc.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    # The 12 small demo files are grouped into ~1 MB shards (shard_size_mb's default).
    assert len(list((tmp_path / "demo" / "documents").glob("part-*.parquet"))) == summary["shards"] > 1
    assert (tmp_path / "demo" / "report.html").is_file()
    quiet = run_winnow("--quiet", "run", "examples/demo.yaml", "--output", str(tmp_path / "demo"))
    lines = [ln for ln in quiet.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 3 and "done." in quiet.stderr and "INFO" not in quiet.stderr


@pytest.mark.slow
def test_two_runs_on_one_output_at_once(tmp_path, demo_config, cli_env, repo):
    """The second run refuses in one line naming the first; the first is unharmed."""
    import shutil

    from helpers.servers import BIN, output_of, stop_group

    crawl = tmp_path / "crawl"
    crawl.mkdir()
    for copy in range(4):  # enough trafilatura work that the runs overlap
        for f in sorted((repo / "examples" / "data" / "warc").iterdir()):
            shutil.copy(f, crawl / f"{copy}-{f.name}")
    cfg = demo_config(tmp_path / "c.yaml", input=[str(crawl)], ingest={"extractor": "trafilatura"},
                      runner={"kind": "threads", "workers": 1})
    out = tmp_path / "out"
    first = subprocess.Popen([str(BIN / "winnow"), "run", str(cfg), "-o", str(out)], env=cli_env, cwd=repo,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / ".winnow-lock.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run([str(BIN / "winnow"), "run", str(cfg), "-o", str(out)], env=cli_env, cwd=repo,
                                capture_output=True, text=True, timeout=300)
        _, err = first.communicate(timeout=600)
    finally:
        stop_group(first)
    assert first.returncode == 0, err[-3000:]
    if second.returncode == 0:  # the first finished before the second took the lock: nothing to test
        pytest.skip("the first run finished before the second started")
    assert second.returncode == 2, second.stderr[-3000:]
    final = second.stderr[second.stderr.rindex("error:"):]
    assert "is in use by another winnow run (pid" in final and "Traceback" not in final
    assert output_of(str(out))["rows"] == json.loads((out / "summary.json").read_text())["rows"]
    assert not (out / ".winnow-lock.json").exists()


def test_a_prefect_api_that_does_not_answer_is_one_line(tmp_path, repo):
    from helpers.servers import free_port, prefect_env

    env = prefect_env(tmp_path / "home", f"http://127.0.0.1:{free_port()}/api")  # nothing listens there
    run = cli("run", str(repo / "examples" / "demo.yaml"), "-o", str(tmp_path / "o"), env=env)
    refused(run, "(PREFECT_API_URL) does not answer", "unset PREFECT_API_URL")
    assert not (tmp_path / "o" / "documents").exists()
    # `winnow deploy` refuses the same way: the same line, status 2 (it was 1).
    deploy = cli("deploy", "--name", "curate", env=env, cwd=tmp_path)
    refused(deploy, "(PREFECT_API_URL) does not answer")
    assert deploy.stderr.strip() == _error_lines(run)[-1]


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


def test_user_text_is_printed_literally_never_as_markup(tmp_path, repo):
    """Paths and values are text: `[bold]` stays in the message, `[/x]` does not crash it, a
    YAML error's brackets are printed as they are, and control characters are escaped."""
    demo = str(repo / "examples" / "demo.yaml")
    bold = cli("run", demo, "-i", str(tmp_path / "[bold]x"), "-o", str(tmp_path / "o"))
    refused(bold, f"{tmp_path}/[bold]x: matched no")
    closing = cli("run", demo, "-i", str(tmp_path / "nothing[/x]"), "-o", str(tmp_path / "o"))
    refused(closing, f"{tmp_path}/nothing[/x]: matched no")
    assert "MarkupError" not in closing.stderr and len(_error_lines(closing)) == 1
    escape = cli("run", demo, "-i", str(tmp_path / "a\x1b[2J\x1b]0;owned\x07b"), "-o", str(tmp_path / "o"))
    refused(escape, "a\\x1b[2J\\x1b]0;owned\\x07b")
    assert "\x1b" not in escape.stderr and "\x07" not in escape.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [/data/warc\noutput: o\n")  # the closing bracket is missing
    proc = cli("run", str(bad))
    refused(proc, str(bad))
    assert "MarkupError" not in proc.stderr and len(_error_lines(proc)) == 1


def test_python_dash_m_winnow_and_help_that_reads_well(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "winnow", "run", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: winnow run [OPTIONS] CONFIG\n")
    # Paragraphs are re-flowed to the width: no line ends in the middle of a sentence and is
    # followed by a short one, as the docstring's own breaks did ("each shard is" / "one output file").
    assert "each shard is one output file" in " ".join(proc.stdout.split())
    assert all(len(ln) <= 80 for ln in proc.stdout.splitlines())
    lines = proc.stdout.splitlines()
    assert not [ln for ln, nxt in zip(lines, lines[1:]) if len(ln) < 40 and ln.strip() and nxt.startswith("  ")
                and not ln.lstrip().startswith("-") and ln.rstrip()[-1:].isalpha() and ":" not in ln]
    for noise in ("{config}", "{CONFIG}", "<bool>", "<list[str]>", "<str>", "<int>"):
        assert noise not in proc.stdout, noise
    assert "-i, --input PATH" in proc.stdout and "--workers N" in proc.stdout
    assert subprocess.run([sys.executable, "-m", "winnow", "--version"], capture_output=True, text=True,
                          timeout=120).stdout.startswith("winnow 0.")


def test_counts_are_pluralised(tmp_path, demo_warcs, cli_env, repo):
    """One input file reads "1 input file in 1 shard", one document "1 document"."""
    (tmp_path / "in").mkdir()
    one = sorted(demo_warcs.iterdir())[0]
    (tmp_path / "in" / one.name).write_bytes(one.read_bytes())
    proc = cli("run", str(repo / "examples" / "demo.yaml"), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o"),
               "--stages", "ingest", env=cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 input file in 1 shard ->" in proc.stderr
    assert not re.search(r"\b1 (documents|files|shards|input files)\b", proc.stderr), proc.stderr[-3000:]


def test_a_run_that_reads_nothing_is_one_line_and_uses_its_own_server_database(tmp_path, repo):
    """With --quiet (and without), a run that reads nothing ends in one line, no Prefect ERROR
    and no traceback. Its temporary server keeps its runs out of ~/.prefect/prefect.db, the
    database of the user's own `prefect server start`. A file name with terminal escapes is
    logged with them escaped."""
    from helpers.servers import prefect_env

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a\x1b[2J\x1b]0;owned\x07.warc.gz").write_bytes(b"this is not a warc file at all")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in prefect_env(tmp_path / "unused").items() if k != "PREFECT_HOME"}
    env["HOME"] = str(home)
    demo = str(repo / "examples" / "demo.yaml")
    quiet = cli("--quiet", "run", demo, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o"), env=env)
    assert quiet.returncode == 1, quiet.stderr[-3000:]
    lines = _error_lines(quiet)
    assert lines[-1].startswith("error: read nothing: 0 documents"), quiet.stderr[-3000:]
    assert "Traceback" not in quiet.stderr and "Encountered exception" not in quiet.stderr
    assert [ln for ln in lines if "error" in ln.lower()] == [lines[-1]], quiet.stderr[-3000:]
    assert not (home / ".prefect" / "prefect.db").exists()
    assert (home / ".prefect" / "winnow-temporary-server.db").exists()
    loud = cli("run", demo, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), env=env)
    assert loud.returncode == 1 and "Traceback" not in loud.stderr and "Encountered exception" not in loud.stderr
    assert "docs.prefect.io" not in loud.stderr  # the banner, off unless --verbose
    assert "not_a_warc: " in loud.stderr and "a\\x1b[2J\\x1b]0;owned\\x07.warc.gz" in loud.stderr
    assert "\x1b" not in loud.stderr and "\x07" not in loud.stderr
    assert not (home / ".prefect" / "prefect.db").exists()
