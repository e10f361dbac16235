"""Scheduling and scale-out with real processes: a Prefect server (SQLite and PostgreSQL), a
deployment picked up by a process worker, a Dask LocalCluster, and the pipeline on S3 (moto)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import fsspec
import httpx
import pytest
import yaml

from conftest import DEMO_WARCS, REPO
from servers import BIN, find_postgres_bin, output_of, postgres_server, prefect_env, prefect_server, winnow

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
def sqlite_server(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect-sqlite")) as url:
        yield url


def api(url: str, method: str, path: str, **kw) -> httpx.Response:
    r = httpx.request(method, f"{url}{path}", timeout=30, **kw)
    r.raise_for_status()
    return r


def deploy_and_run(api_url: str, home: Path, out: Path) -> None:
    env = prefect_env(home, api_url)
    winnow("deploy", "--name", "curate", env=env)
    deployments = api(api_url, "POST", "/deployments/filter", json={}).json()
    assert [d["name"] for d in deployments] == ["curate"]
    dep = deployments[0]
    assert dep["parameters"] == {"config_path": "examples/demo.yaml"}
    assert dep["work_pool_name"] == "winnow"
    # The cron example is registered, switched off.
    assert [(s["schedule"]["cron"], s["active"]) for s in dep["schedules"]] == [("0 3 * * *", False)]

    subprocess.run([str(BIN / "prefect"), "deployment", "run", "winnow-run/curate", "--param", f"output={out}",
                    "--param", "workers=2"], env=env, cwd=REPO, check=True, capture_output=True, timeout=120)
    # One polling round: the worker starts the scheduled run in a subprocess and waits for it.
    worker = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "winnow", "--run-once"],
                            env=env, cwd="/", capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    runs = api(api_url, "POST", "/flow_runs/filter", json={}).json()
    states = {r["name"]: r["state_type"] for r in runs}
    assert len(runs) == 2 and set(states.values()) == {"COMPLETED"}, states  # winnow-run + its curate subflow
    keys = {a["key"] for a in api(api_url, "POST", "/artifacts/filter", json={}).json()}
    assert {"winnow-funnel", "winnow-funnel-table", "winnow-output", "winnow-manifest", "winnow-report"} <= keys


def test_deployment_runs_on_a_process_worker(sqlite_server, tmp_path, reference):
    deploy_and_run(sqlite_server, tmp_path / "home", tmp_path / "out")
    assert output_of(str(tmp_path / "out")) == reference


def test_prefect_server_on_postgresql(tmp_path, reference):
    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    with postgres_server() as db_url, prefect_server(tmp_path / "server", database_url=db_url) as api_url:
        deploy_and_run(api_url, tmp_path / "home", tmp_path / "out")
        # The runs are in PostgreSQL, not in a SQLite file.
        assert not list((tmp_path / "server").glob("*.db"))
    assert output_of(str(tmp_path / "out")) == reference


def test_dask_local_cluster_gives_the_same_output(sqlite_server, tmp_path, reference):
    run = winnow("run", str(DEMO), "-o", str(tmp_path / "out"), "--runner", "dask", "--workers", "2",
                 env=prefect_env(tmp_path / "home", sqlite_server))
    logs = run.stdout + run.stderr
    assert logs.count("Start Nanny at") >= 2, logs[-3000:]  # two worker processes
    assert output_of(str(tmp_path / "out")) == reference


def test_full_pipeline_reads_and_writes_s3(s3_server, tmp_path, reference):
    fs = fsspec.filesystem("s3", **s3_server)
    for f in sorted(DEMO_WARCS.iterdir()):
        fs.put_file(str(f), f"winnow-test/e2e/crawl/{f.name}")
    cfg = yaml.safe_load(DEMO.read_text())
    cfg.update(input=["s3://winnow-test/e2e/crawl/"], output="s3://winnow-test/e2e/out",
               storage_options=s3_server)
    cfg["ingest"]["url_filter"]["blocked_domains_file"] = str(DEMO.parent / "blocklists" / "domains.txt")
    (tmp_path / "s3.yaml").write_text(yaml.safe_dump(cfg))
    winnow("run", str(tmp_path / "s3.yaml"), env=prefect_env(tmp_path / "home"))
    assert output_of("s3://winnow-test/e2e/out", s3_server) == reference
    # Every write went through temp file + rename: nothing half-written is left in the bucket.
    assert not [p for p in fs.find("winnow-test/e2e/out") if ".tmp-" in p]
    assert fs.exists("winnow-test/e2e/out/packed/manifest.json")
    # A rerun finds every shard done and redoes nothing.
    rerun = winnow("run", str(tmp_path / "s3.yaml"), env=prefect_env(tmp_path / "home"))
    shards = json.loads(fs.cat_file("winnow-test/e2e/out/summary.json"))["shards"]
    assert f"shards: {shards} ({shards} already done, 0 failed)" in rerun.stderr
