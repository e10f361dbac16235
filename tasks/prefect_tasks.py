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


@task(name="pack", retries=0, persist_result=False)
def pack_documents(doc_shards: list[str], out_dir: str, config: dict[str, Any], input_key: str) -> dict[str, Any]:
    from tasks.pack import run_pack
    from winnow.config import WinnowConfig
    from winnow.shardio import read_documents
    from winnow.stats import StageStats

    cfg = WinnowConfig.model_validate(config)
    read_stats = StageStats()
    return run_pack(doc_shards, out_dir, cfg.pack, cfg.storage_options,
                    lambda path: read_documents(path, read_stats, cfg.storage_options), input_key)
