"""The flow that deployments run: a config file (local or s3://) plus per-run overrides.

Deployments (deploy/prefect.yaml) take their parameters from config files rather than from a
long parameter form, so a scheduled run and `winnow run CONFIG` do exactly the same thing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.curate import run_curate
from winnow.config import load_config


@flow(name="winnow-run", log_prints=True, persist_result=False)
def run_config(
    config_path: str,
    input: list[str] | None = None,
    output: str | None = None,
    stages: list[str] | None = None,
    runner: str | None = None,
    workers: int | None = None,
    config_storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Curate with the settings of `config_path` (relative paths: to the worker's working directory).

    input/output/runner/workers replace the config's values; `stages` (e.g. ["dedup"] or
    ["ingest", "lid"]) runs only those stages; `config_storage_options` are the fsspec options
    for reading a config stored on S3.
    """
    cfg = load_config(config_path, {"input": input, "output": output, "runner.kind": runner,
                                    "runner.workers": workers}, storage_options=config_storage_options)
    if stages:
        cfg = cfg.only_stages(stages)
    get_run_logger().info("config %s: %s -> %s (runner %s x%d)", config_path, cfg.input, cfg.output,
                          cfg.runner.kind, cfg.runner.workers)
    return run_curate(cfg)
