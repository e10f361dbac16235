"""Fixtures shared by the unit and end-to-end tests (helpers live in tests/helpers/, reached
through these fixtures or imported as `helpers.*`; nothing is imported from this file)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import servers

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def demo_warcs() -> Path:
    """The real sample WARCs shipped for the demo (examples/data/README.md has their provenance)."""
    return REPO / "examples" / "data" / "warc"


@pytest.fixture(scope="session")
def bad_warcs() -> Path:
    return REPO / "tests" / "data" / "warc" / "bad"


@pytest.fixture(scope="session")
def test_data() -> Path:
    return REPO / "tests" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (CI has it beside the clone; a fresh clone may not): skip without it."""
    path = REPO.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, Any]]:
    """A real local S3 endpoint (moto server) with one bucket; yields fsspec storage options."""
    from moto.server import ThreadedMotoServer

    port = servers.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="winnow-test")
    yield {"client_kwargs": {"endpoint_url": endpoint}, "key": "testing", "secret": "testing"}
    server.stop()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One real temporary Prefect API for the in-process flow tests of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        from prefect.settings import PREFECT_API_URL

        yield str(PREFECT_API_URL.value())


@pytest.fixture
def cli_env(tmp_path: Path, prefect_server_api: str) -> dict[str, str]:
    """Environment of a CLI run: its own PREFECT_HOME and the session's Prefect server, which
    saves each run the start of a temporary server of its own (see `own_server_env`)."""
    return servers.prefect_env(tmp_path / "prefect-home", prefect_server_api)


@pytest.fixture
def own_server_env(tmp_path: Path) -> dict[str, str]:
    """A CLI run exactly as the README's: no API URL, so winnow starts a temporary server."""
    return servers.prefect_env(tmp_path / "prefect-home")


@pytest.fixture
def run_winnow(cli_env: dict[str, str]) -> Callable[..., Any]:
    """`winnow ARGS...` in a subprocess; check=False returns the failed process too."""

    def run(*args: str, env: dict[str, str] | None = None, check: bool = True, cwd: Path | str = REPO,
            timeout: float = 600) -> Any:
        return servers.winnow(*args, env=env or cli_env, check=check, cwd=cwd, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def demo_config(demo_warcs: Path) -> Callable[..., Path]:
    """Write the demo config with changes (absolute paths, one shard per file by default)."""

    def make(path: Path, **changes: Any) -> Path:
        demo = REPO / "examples" / "demo.yaml"
        cfg = yaml.safe_load(demo.read_text())
        cfg["ingest"]["url_filter"]["blocked_domains_file"] = str(demo.parent / "blocklists" / "domains.txt")
        cfg["input"] = [str(demo_warcs)]
        cfg["shard_size_mb"] = 0  # 12 shards: a kill lands between finished and unfinished ones
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        path.write_text(yaml.safe_dump(cfg))
        return path

    return make


@pytest.fixture(scope="session")
def output_of() -> Callable[..., dict[str, Any]]:
    return servers.output_of


@pytest.fixture(scope="session")
def run_stage() -> Callable[..., Any]:
    """Run one document stage over documents as a shard would: (kept documents, stats)."""
    from winnow.stage import StageEnv
    from winnow.stats import StageStats

    def run(stage_cls: Any, section: Any, docs: Any, on_reject: Any = None) -> tuple[list[Any], StageStats]:
        stats = StageStats()
        kept = list(stage_cls(section, StageEnv()).run(docs, stats, on_reject))
        return kept, stats

    return run


@pytest.fixture(scope="session")
def warc_docs(demo_warcs: Path) -> Callable[[str], list[Any]]:
    """Documents the ingest stage extracts from one of the demo WARCs."""
    from winnow.stats import StageStats
    from winnow.tasks.ingest import IngestConfig, ingest_warc

    def docs(name: str) -> list[Any]:
        return list(ingest_warc(str(demo_warcs / name), IngestConfig(), StageStats()))

    return docs


@pytest.fixture(scope="session")
def prose_windows(test_data: Path) -> Callable[..., list[str]]:
    """Windows of a Gutenberg book (tests/data/text), hard line wraps undone as on a web page."""
    import gzip
    import re

    def windows(name: str, size: int = 3000) -> list[str]:
        text = gzip.open(test_data / "text" / name, "rt", encoding="utf-8").read()
        text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
        return [text[i : i + size] for i in range(0, len(text) - size, size)]

    return windows


@pytest.fixture(scope="session")
def prefect_server_api(tmp_path_factory) -> Iterator[Any]:
    """One real `prefect server start` (SQLite) for the session's CLI runs and deployments; its
    scheduler looks for due cron runs every 5 s instead of 60 (test speed only)."""
    with servers.prefect_server(tmp_path_factory.mktemp("prefect-server"),
                                extra={"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"}) as url:
        yield url
