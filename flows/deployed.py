"""The flow that deployments run: a config file (local or s3://) plus per-run overrides.

Deployments (deploy/prefect.yaml) take their settings from config files rather than from a
long parameter form, so a scheduled run and `winnow run CONFIG` do exactly the same thing. The
work runs inside this flow run (no subflow), so its funnel, report link and output artifacts are
on the flow run that `prefect deployment run` returns.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from winnow.flows.curate import run_pipeline
from winnow.storage import StorageOptions
from winnow.tasks.pipeline import load_config


def _as_list(value: str | list[str] | None) -> list[str] | None:
    """`--param input=s3://b/crawl/` passes a string; a JSON list passes a list: take both."""
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


@flow(name="winnow-run", persist_result=False)
def run_config(
    config_path: str,
    input: str | list[str] | None = None,
    output: str | None = None,
    stages: str | list[str] | None = None,
    runner: str | None = None,
    workers: int | None = None,
    config_storage_options: StorageOptions = None,
) -> dict[str, Any]:
    """Curate with the settings of `config_path` (an absolute path or s3:// URL; a relative path
    is relative to the worker's working directory).

    input (a path, comma-separated paths or a list), output, runner and workers replace the
    config's values; `stages` (e.g. "dedup" or ["ingest", "lid"]) runs only those stages;
    `config_storage_options` are the fsspec options for reading a config stored on S3.
    """
    cfg = load_config(config_path, {"input": _as_list(input), "output": output, "runner.kind": runner,
                                    "runner.workers": workers}, storage_options=config_storage_options,
                      stages=_as_list(stages))
    get_run_logger().info("config %s: %s -> %s (runner %s x%d)", config_path, cfg.input, cfg.output,
                          cfg.runner.kind, cfg.runner.workers)
    return run_pipeline(cfg)
