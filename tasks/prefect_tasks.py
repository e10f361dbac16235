"""Thin Prefect wrappers around the plain stage functions."""

from __future__ import annotations

import posixpath
from typing import Any

from prefect import task
from prefect.runtime import task_run

from tasks.shard import process_shard


def _shard_run_name() -> str:
    return "shard " + posixpath.basename(str(task_run.parameters.get("output_path", "?")))


@task(name="curate-shard", task_run_name=_shard_run_name, retries=1, retry_delay_seconds=5,
      persist_result=False)
def curate_shard(input_path: str, output_path: str, config: dict[str, Any]) -> dict[str, Any]:
    return process_shard(input_path, output_path, config)
