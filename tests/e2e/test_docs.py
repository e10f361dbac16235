"""Every command the README and the docs pages show is run: by this file, or by a test named here.

The commands are the lines of the ```bash / ```sh / ```console blocks of README.md, docs/**/*.md
and deploy/README.md (docs/deployment.md shows it). Each one must be in RUN (this file runs it,
in a folder of its own, against the demo's output) or in ELSEWHERE (with the tests that run it,
which must exist); a command added to a page fails `test_every_command_on_the_pages_is_run`
until it is one or the other. NOT_RUN holds the few that no machine of the suite can run, each
with the reason. Also here: the README's relative links resolve, and the configuration reference
(docs/configuration-reference.md) is the one the stage registry generates today.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.servers import prefect_env

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SHELLS = {"bash", "sh", "shell", "console"}


def pages() -> list[Path]:
    return [REPO / "README.md", REPO / "deploy" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands(text: str) -> list[str]:
    """The shell commands of a page's fenced blocks: comments cut, continuations joined, spaces collapsed."""
    found = []
    for block in FENCE.finditer(text):
        if block.group(1) not in SHELLS:
            continue
        lines = block.group(2).splitlines()
        if block.group(1) == "console":
            lines = [ln[2:] for ln in lines if ln.startswith("$ ")]
        pending = ""
        for line in lines:
            line = line.rstrip() if pending else _strip_comment(line)
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            command = " ".join((pending + line).split())
            pending = ""
            if command:
                found.append(command)
    return found


def shown() -> dict[str, list[str]]:
    """command -> the pages that show it."""
    where: dict[str, list[str]] = {}
    for page in pages():
        for command in commands(page.read_text("utf-8")):
            where.setdefault(command, []).append(str(page.relative_to(REPO)))
    return where


# Run by this file, in a folder holding the output of `winnow demo -o demo-output` (the first one).
# A value other than None is what is run instead, for a command that shows `...` placeholders.
RUN: dict[str, str | None] = {
    "winnow demo -o demo-output": None,
    "winnow report demo-output": None,
    "winnow stages": None,
    "python -c \"import pyarrow.parquet as pq; print(pq.read_table('demo-output/documents').num_rows)\"": None,
    "python -c \"import datasets; print(datasets.load_dataset('parquet', data_dir='demo-output/packed', "
    "split='train'))\"": None,
    "winnow --version; winnow --quiet run ...; winnow --verbose run ...":
        # `winnow --quiet run`: tests/e2e/test_cli.py::test_demo_command_from_readme
        "winnow --version && winnow --verbose run examples/demo.yaml -o demo-output",
}

# Run by other tests (node ids, or a CI script that .ci/run runs); each must exist.
ELSEWHERE: dict[str, list[str]] = {
    "make demo": ["tests/e2e/test_cli.py::test_demo_command_from_readme", ".ci/wheel_check.sh"],
    "make test": [".ci/run"],
    "pip install /path/to/winnow": [".ci/wheel_check.sh"],
    "winnow run examples/demo.yaml": ["tests/e2e/test_cli.py::test_demo_command_from_readme"],
    "winnow run my.yaml -i 's3://bucket/crawl/*.warc.gz' -o s3://bucket/out": [
        "tests/e2e/test_cli.py::test_s3_problems_are_one_line",  # -i s3://..., -o s3://... on the CLI
        "tests/e2e/test_deploy.py::test_full_pipeline_reads_and_writes_s3"],  # a run from S3 to S3
    "winnow run my.yaml --runner processes --workers 8": [
        "tests/e2e/test_determinism.py::test_every_runner_and_a_resumed_run_write_identical_files",
        "tests/e2e/test_terminal.py::test_processes_runner_on_a_terminal_says_what_it_starts_and_a_run_that_reads_nothing_is_one_line"],
    "winnow run my.yaml --runner dask --workers 8": [
        "tests/e2e/test_deploy.py::test_dask_local_cluster_gives_the_same_output"],
    "winnow run my.yaml --stages dedup -i out/documents -o out2": [
        "tests/e2e/test_partial_runs.py::test_winnow_shards_as_input_are_read_in_place_not_copied"],
    "winnow run my.yaml --storage-options '{\"client_kwargs\": {\"endpoint_url\": \"http://minio:9000\"}}'": [
        "tests/e2e/test_cli.py::test_s3_problems_are_one_line",
        "tests/e2e/test_cli.py::test_report_reads_s3_with_storage_options"],
    "winnow deploy --config /abs/my.yaml --cron '0 3 * * *'": [
        "tests/e2e/test_deploy.py::test_the_server_scheduler_creates_runs_of_an_active_cron"],
    "winnow train-quality -p good.jsonl -n bad.jsonl -o quality.ftz": [
        "tests/unit/tasks/test_lid_quality_stages.py::test_train_quality_cli_reports_size"],
    "python -m winnow run ...": ["tests/e2e/test_cli.py::test_python_dash_m_winnow_and_help_that_reads_well"],
    # deploy/README.md (docs/deployment.md)
    "prefect server start --host 127.0.0.1 --port 4200 &": [
        "tests/e2e/test_deploy.py::test_deployment_runs_on_a_process_worker"],  # helpers.servers.prefect_server
    "export PREFECT_API_URL=http://127.0.0.1:4200/api": [
        "tests/e2e/test_deploy.py::test_deployment_runs_on_a_process_worker"],
    "winnow deploy --config /data/configs/cc-2026-11.yaml": [
        "tests/e2e/test_deploy.py::test_deployment_runs_on_a_process_worker"],
    "winnow deploy --name curate --config s3://bucket/configs/cc.yaml --cron '0 3 * * *'": [
        "tests/e2e/test_deploy.py::test_deployment_runs_on_a_process_worker",  # --name curate --config
        "tests/e2e/test_deploy.py::test_the_server_scheduler_creates_runs_of_an_active_cron"],  # --cron
    "prefect deployment run winnow-run/curate --param output=s3://bucket/curated/2026-11 "
    "--param input=s3://bucket/crawl/2026-11/ --param workers=16": [
        "tests/e2e/test_deploy.py::test_deployment_runs_on_a_process_worker"],
    "prefect deployment run winnow-run/curate --param 'input=[\"s3://b/a/\", \"s3://b/b/\"]'": [
        "tests/e2e/test_deploy.py::test_deployment_runs_on_a_process_worker"],
    "prefect worker start --pool winnow": ["tests/e2e/test_deploy.py::test_deployment_runs_on_a_process_worker"],
}

# Shown but run by no test, with the reason. Keep this short.
NOT_RUN: dict[str, str] = {
    "docker compose -f deploy/docker-compose.yml up -d --build":
        "needs Docker, which the CI machines do not have; the server settings it sets are measured "
        "by benchmarks/scale.py prefect, and the Prefect server on PostgreSQL is "
        "tests/e2e/test_deploy.py::test_prefect_server_on_postgresql",
}


def _exists(target: str) -> bool:
    path, _, name = target.partition("::")
    file = REPO / path
    if not file.is_file():
        return False
    return not name or re.search(rf"^(async )?def {re.escape(name)}\(", file.read_text("utf-8"), re.M) is not None


def test_every_command_on_the_pages_is_run():
    where = shown()
    assert len(where) >= 20, f"too few commands found on the pages: {sorted(where)}"
    unmapped = {c: w for c, w in where.items() if c not in RUN and c not in ELSEWHERE and c not in NOT_RUN}
    assert not unmapped, ("commands shown on a page that no test runs (run one in tests/e2e/test_docs.py, or "
                          f"name the test that runs it in ELSEWHERE): {json.dumps(unmapped, indent=1)}")
    stale = sorted((set(RUN) | set(ELSEWHERE) | set(NOT_RUN)) - set(where))
    assert not stale, f"commands no page shows any more (remove them here): {stale}"
    missing = sorted({t for targets in ELSEWHERE.values() for t in targets if not _exists(t)})
    assert not missing, f"ELSEWHERE names tests that do not exist: {missing}"


def test_the_readme_keeps_the_two_commands_that_ci_reads():
    readme = (REPO / "README.md").read_text("utf-8")
    two = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    assert commands(two) == ["make demo", "make test"]


def test_the_readmes_links_resolve():
    readme = (REPO / "README.md").read_text("utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z]+:", t)]
    assert len(local) >= 15
    assert [t for t in local if t and not (REPO / t).exists()] == []


def test_every_stage_has_its_page_in_the_nav():
    from winnow.tasks.pipeline import discover

    nav = (REPO / "mkdocs.yml").read_text("utf-8")
    missing = [s.name for s in discover()
               if not (REPO / "docs" / "stages" / f"{s.name}.md").is_file() or f"stages/{s.name}.md" not in nav]
    assert not missing, f"stages without a page docs/stages/NAME.md in mkdocs.yml's nav: {missing}"
    for page in (REPO / "README.md", REPO / "docs" / "index.md"):
        table = re.findall(r"^\| \[`(\w+)`\]", page.read_text("utf-8"), re.M)
        assert table == [s.name for s in discover()], f"{page.name}'s stage table is not the registry, in order"


def test_the_configuration_reference_is_current():
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "gen_reference.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr + "\nrun `make reference` and commit docs/configuration-reference.md"


@pytest.mark.slow
def test_the_commands_the_pages_show_run(tmp_path):
    """RUN, in order, as a user types them (PATH starts with the venv's bin/, no PREFECT_API_URL:
    winnow starts its own temporary server), from a folder of their own; demo-output is the one
    `winnow demo -o demo-output` writes there."""
    env = prefect_env(tmp_path / "prefect-home", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                      HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    (tmp_path / "examples").symlink_to(REPO / "examples")  # `winnow run examples/demo.yaml -o ...`
    out = {}
    for command, instead in RUN.items():
        proc = subprocess.run(["bash", "-c", instead or command], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"{command!r} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        out[command] = proc.stdout + proc.stderr
    demo = tmp_path / "demo-output"
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["shards"] > 1 and (demo / "report.html").is_file()
    # Every path of the tour's listing of demo-output/ is there.
    readme = (REPO / "README.md").read_text("utf-8")
    tour = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    listing = re.search(r"^```text\ndemo-output/\n(.*?)^```", tour, re.M | re.S)
    assert listing, "the tour's listing of demo-output/ is missing"
    paths = [re.split(r"\s{2,}", line.strip())[0].removesuffix(" ...") for line in listing.group(1).splitlines()]
    assert len(paths) >= 8
    for name in (n for entry in paths for n in entry.split(", ")):
        assert list(demo.glob(name.rstrip("/"))), f"the tour lists demo-output/{name}; the demo wrote none"
    assert (demo / "packed" / "__meta__" / "manifest.json").is_file()
    assert "| stage | docs in | docs out | kept | bytes out |" in (demo / "summary.md").read_text()
    # `winnow stages` names every stage of the README's table; the rerun with --verbose redid nothing.
    for stage in re.findall(r"^\| \[`(\w+)`\]", readme, re.M):
        assert re.search(rf"^  {stage}\b", out["winnow stages"], re.M), stage
    rerun = out["winnow --version; winnow --quiet run ...; winnow --verbose run ..."]
    assert re.search(r"shards: \d+ \((\d+) already done, 0 failed\)", rerun), rerun[-2000:]
    done = re.search(r"shards: (\d+) \((\d+) already done", rerun)
    assert done and done.group(1) == done.group(2), rerun[-2000:]
    pyarrow_rows = next(out[c] for c in RUN if "pyarrow" in c)
    assert int(pyarrow_rows.strip().splitlines()[-1]) == summary["rows"] > 0

