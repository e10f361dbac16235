"""Scheduling and scale-out with real processes: a Prefect server (SQLite and PostgreSQL), the
server's own scheduler creating a run of a cron deployment, a deployment picked up by a process
worker, a Dask LocalCluster, and the pipeline on S3 (moto)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import fsspec
import httpx
import pytest
import yaml
from helpers.servers import (
    BIN,
    REPO,
    find_postgres_bin,
    output_of,
    postgres_server,
    prefect_env,
    prefect_server,
    winnow,
)

pytestmark = pytest.mark.slow
DEMO = REPO / "examples" / "demo.yaml"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The demo run with the default local runner (threads, temporary server)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    home = tmp_path_factory.mktemp("reference-home")
    winnow("run", str(DEMO), "-o", str(out), "--runner", "threads", "--workers", "2", env=prefect_env(home))
    result = output_of(str(out))
    assert result["docs"] and result["sequences"] and result["dedup"]["removed"] > 0
    return result


@pytest.fixture(scope="module")
def sqlite_server(prefect_server_api):
    return prefect_server_api


def api(url: str, method: str, path: str, **kw) -> httpx.Response:
    r = httpx.request(method, f"{url}{path}", timeout=30, **kw)
    r.raise_for_status()
    return r


def deploy_and_run(api_url: str, home: Path, out: Path, cwd: Path) -> None:
    env = prefect_env(home, api_url)
    winnow("deploy", "--name", "curate", "--config", str(DEMO), env=env, cwd=cwd)
    deployments = api(api_url, "POST", "/deployments/filter", json={}).json()
    dep = next(d for d in deployments if d["name"] == "curate")
    assert dep["parameters"] == {"config_path": str(DEMO)} and dep["entrypoint"] == "winnow.flows.deployed.run_config"
    assert dep["work_pool_name"] == "winnow" and dep["pull_steps"] in ([], None)
    assert [(s["schedule"]["cron"], s["active"]) for s in dep["schedules"]] == [("0 3 * * *", False)]

    # `input` as a bare path (what --param passes) is taken, as are comma-separated paths.
    triggered = subprocess.run([str(BIN / "prefect"), "deployment", "run", "winnow-run/curate",
                                "--param", f"output={out}", "--param", "workers=2",
                                "--param", f"input={REPO / 'examples' / 'data' / 'warc'}"],
                               env=env, cwd=cwd, check=True, capture_output=True, text=True, timeout=120)
    run_id = next(line.split()[-1] for line in triggered.stdout.splitlines() if "UUID" in line)
    # One polling round: the worker starts the scheduled run in a subprocess and waits for it.
    worker = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "winnow", "--run-once"],
                            env=env, cwd="/", capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    run = api(api_url, "GET", f"/flow_runs/{run_id}").json()
    assert run["state_type"] == "COMPLETED", run["state"]
    children = api(api_url, "POST", "/flow_runs/filter",
                   json={"flow_runs": {"parent_task_run_id": {"is_null_": False}}}).json()
    assert children == []  # no subflow: the work is in the run that `deployment run` returned
    artifacts = api(api_url, "POST", "/artifacts/filter",
                    json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    keys = {a["key"] for a in artifacts}
    assert {"winnow-funnel", "winnow-funnel-table", "winnow-output", "winnow-manifest", "winnow-report"} <= keys


def test_deployment_runs_on_a_process_worker(sqlite_server, tmp_path, reference):
    # Deployed and run from a folder with a user's own tasks.py and flows/: they shadow nothing.
    cwd = tmp_path / "project"
    (cwd / "flows").mkdir(parents=True)
    (cwd / "tasks.py").write_text("raise SystemExit('a user tasks.py must never be imported by winnow')\n")
    (cwd / "flows" / "__init__.py").write_text("raise SystemExit('nor a user flows/ package')\n")
    deploy_and_run(sqlite_server, tmp_path / "home", tmp_path / "out", cwd)
    assert output_of(str(tmp_path / "out")) == reference


def test_the_server_scheduler_creates_runs_of_an_active_cron(sqlite_server, tmp_path):
    """SQLAlchemy 2.1 breaks prefect 3.8.8's scheduler (cron deployments never get a run); with
    the pinned 2.0 the server itself schedules one."""
    env = prefect_env(tmp_path / "home", sqlite_server)
    winnow("deploy", "--name", "ingest-filter", "--config", str(DEMO), "--cron", "* * * * *", env=env, cwd=tmp_path)
    dep = next(d for d in api(sqlite_server, "POST", "/deployments/filter", json={}).json()
               if d["name"] == "ingest-filter")
    assert [(s["schedule"]["cron"], s["active"]) for s in dep["schedules"]] == [("* * * * *", True)]
    deadline = time.monotonic() + 120
    scheduled: list = []
    while time.monotonic() < deadline and not scheduled:
        runs = api(sqlite_server, "POST", "/flow_runs/filter",
                   json={"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}}).json()
        scheduled = [r for r in runs if r["auto_scheduled"] and r["state_type"] == "SCHEDULED"]
        time.sleep(1)
    assert scheduled, "the server's scheduler created no run of an active every-minute cron deployment"
    assert "Can't evaluate bulk DML" not in (sqlite_server.home / "server.log").read_text()


def test_prefect_server_on_postgresql(tmp_path, reference):
    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    with postgres_server() as db_url, prefect_server(tmp_path / "server", database_url=db_url) as api_url:
        deploy_and_run(api_url, tmp_path / "home", tmp_path / "out", tmp_path)
        # The runs are in PostgreSQL, not in a SQLite file.
        assert not list((tmp_path / "server").glob("*.db"))
    assert output_of(str(tmp_path / "out")) == reference


def test_dask_local_cluster_gives_the_same_output(sqlite_server, tmp_path, reference):
    run = winnow("run", str(DEMO), "-o", str(tmp_path / "out"), "--runner", "dask", "--workers", "2",
                 env=prefect_env(tmp_path / "home", sqlite_server))
    logs = run.stdout + run.stderr
    assert logs.count("Start Nanny at") >= 2 or "dask" in logs.lower(), logs[-3000:]
    assert output_of(str(tmp_path / "out")) == reference


def test_full_pipeline_reads_and_writes_s3(s3_server, tmp_path, reference):
    fs = fsspec.filesystem("s3", **s3_server)
    for f in sorted((REPO / "examples" / "data" / "warc").iterdir()):
        fs.put_file(str(f), f"winnow-test/e2e/crawl/{f.name}")
    fs.put_file(str(REPO / "examples" / "blocklists" / "domains.txt"), "winnow-test/e2e/lists/domains.txt")
    cfg = yaml.safe_load(DEMO.read_text())
    cfg.update(input=["s3://winnow-test/e2e/crawl/"], output="s3://winnow-test/e2e/out", storage_options=s3_server)
    cfg["ingest"]["url_filter"]["blocked_domains_file"] = "s3://winnow-test/e2e/lists/domains.txt"
    (tmp_path / "s3.yaml").write_text(yaml.safe_dump(cfg))
    winnow("run", str(tmp_path / "s3.yaml"), env=prefect_env(tmp_path / "home"))
    assert output_of("s3://winnow-test/e2e/out", s3_server) == reference
    # Every write went through temp file + rename: nothing half-written is left in the bucket.
    assert not [p for p in fs.find("winnow-test/e2e/out") if ".tmp-" in p]
    assert fs.exists("winnow-test/e2e/out/packed/__meta__/manifest.json")
    assert not fs.exists("winnow-test/e2e/out/.winnow-lock.json")  # released
    # A rerun finds every shard done and redoes nothing.
    rerun = winnow("run", str(tmp_path / "s3.yaml"), env=prefect_env(tmp_path / "home"))
    shards = json.loads(fs.cat_file("winnow-test/e2e/out/summary.json"))["shards"]
    assert f"shards: {shards} ({shards} already done, 0 failed)" in rerun.stderr
