from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]
DEMO_WARCS = REPO / "examples" / "data" / "warc"
BAD_WARCS = REPO / "tests" / "data" / "warc" / "bad"
SHARED = REPO.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real local S3 endpoint (moto server) with one bucket; yields fsspec storage options."""
    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer

    port = free_port()
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
