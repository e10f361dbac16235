"""The curation flow: map the per-shard stages over the input files, then summarise."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_link_artifact, create_markdown_artifact, create_progress_artifact, create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tasks.pack import PACKED_DIR, STAGE as PACK
from tasks.prefect_tasks import (
    check_resources_task, curate_shard, dedup_all, dedup_band, dedup_clusters, dedup_filter, dedup_merge_pair,
    dedup_signatures, pack_documents, rephrase_shard,
)
from winnow.config import ConfigError, WinnowConfig
from winnow.report import write_report
from winnow.shardio import (
    group_inputs, join, list_inputs, remove_stale_temp_files, shard_name, write_bytes_atomic,
)
from winnow.stats import funnel_markdown, funnel_rows, merge_runs

DOCUMENTS_DIR = "documents"
DEDUPED_DIR = "deduped"
DEDUP_WORK = "dedup"
REPHRASED_DIR = "rephrased"


class ShardFailures(RuntimeError):
    """Some shards failed; the others are finished and a rerun redoes only the failed ones."""


@flow(name="winnow-curate", log_prints=True, persist_result=False)
def curate(config: dict[str, Any]) -> dict[str, Any]:
    """Ingest and curate every input shard; write Parquet shards, stats and a summary."""
    cfg = WinnowConfig.model_validate(config)
    logger = get_run_logger()
    stale = remove_stale_temp_files(cfg.output, cfg.storage_options)
    if stale:
        logger.info("removed %d temp file(s) left by an interrupted earlier run", stale)
    files = list_inputs(cfg.input, cfg.storage_options)
    groups = group_inputs(files, cfg.shard_size_mb, cfg.storage_options)
    # A missing or corrupt model fails here, before any shard runs. With worker processes, one
    # check per worker at once also starts and warms them all together (imports, models).
    if cfg.runner.kind == "threads":
        check_resources_task(cfg.model_dump(mode="json"))
    else:
        for f in [check_resources_task.submit(cfg.model_dump(mode="json"))
                  for _ in range(min(cfg.runner.workers, len(groups)))]:
            f.result()
    # A shard's input is a file, or a list of files when small files are grouped.
    inputs: list[Any] = [g[0] if len(g) == 1 else g for g in groups]
    out_dir = join(cfg.output, DOCUMENTS_DIR)
    outputs = [join(out_dir, shard_name(i)) for i in range(len(inputs))]
    logger.info("%d input file(s) in %d shard(s) -> %s", len(files), len(inputs), out_dir)

    task = curate_shard.with_options(retries=cfg.runner.retries)
    cfg_dict = cfg.model_dump(mode="json")
    futures = [task.submit(i, o, cfg_dict) for i, o in zip(inputs, outputs)]
    index = {f.task_run_id: k for k, f in enumerate(futures)}

    results: list[dict[str, Any] | None] = [None] * len(futures)
    failures: list[str] = []
    # The Prefect UI's progress bar; updated at most every 2 s so that thousands of shards do not
    # turn into thousands of API calls.
    progress_id = create_progress_artifact(progress=0.0, description=f"shards curated (of {len(futures)})")
    last_update = time.monotonic()
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]curate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[note]}"), console=console, transient=False,
                  disable=not console.is_terminal) as progress:
        bar = progress.add_task("shards", total=len(futures), note="")
        for fut in as_completed(futures):
            k = index[fut.task_run_id]
            try:
                results[k] = fut.result()
            except Exception as exc:  # noqa: BLE001 - report every failed shard, keep the others
                failures.append(f"{inputs[k]}: {type(exc).__name__}: {exc}")
                logger.error("shard %s failed: %s", outputs[k], exc)
            progress.update(bar, advance=1, note=f"{len(failures)} failed" if failures else "")
            done = sum(r is not None for r in results) + len(failures)
            if time.monotonic() - last_update > 2 or done == len(futures):
                update_progress_artifact(progress_id, progress=100.0 * done / max(1, len(futures)))
                last_update = time.monotonic()

    finished = [r for r in results if r is not None]
    stats = merge_runs([r["stats"] for r in finished])
    final_outputs = outputs
    dedup_summary = None
    if cfg.dedup.enabled and not failures:
        final_outputs, dedup_summary, dedup_stats = dedup_phase(outputs, cfg, cfg_dict,
                                                                sum(r["rows"] for r in finished))
        stats.update(merge_runs(dedup_stats))
        logger.info("dedup: %s clusters, %s near-duplicates removed", f"{dedup_summary['clusters']:,}",
                    f"{dedup_summary['removed']:,}")
    rephrase_rows = None
    if cfg.rephrase.enabled and not failures:
        rephrased = [join(cfg.output, REPHRASED_DIR, shard_name(k)) for k in range(len(final_outputs))]
        checkpoints = [join(cfg.output, "rephrase_checkpoints", shard_name(k, suffix=".jsonl"))
                       for k in range(len(final_outputs))]
        results_r = [f.result() for f in [rephrase_shard.submit(i, k, o, c, cfg_dict) for k, (i, o, c) in
                                          enumerate(zip(final_outputs, rephrased, checkpoints))]]
        stats.update(merge_runs([r["stats"] for r in results_r]))
        final_outputs, rephrase_rows = rephrased, sum(r["rows"] for r in results_r)
    manifest = None
    if cfg.pack.enabled and not failures:
        # Packing sees every curated document: it waits for all shards.
        input_key = json.dumps([(o, r["rows"]) for o, r in zip(final_outputs, results)]
                               + [dedup_summary, rephrase_rows])
        manifest = run_task(pack_documents, cfg, final_outputs, join(cfg.output, PACKED_DIR), cfg_dict, input_key)
        stats.update(merge_runs([{PACK: manifest["stats"]}]))
        logger.info("packed %s tokens into %s sequences (padding %.3f%%) -> %s", f"{manifest['tokens']:,}",
                    f"{manifest['sequences']:,}", 100 * manifest["padding_fraction"], join(cfg.output, PACKED_DIR))
    summary = {
        "output": out_dir,
        "shards": len(inputs),
        "shards_skipped_as_done": sum(1 for r in finished if r["skipped"]),
        "shards_failed": len(failures),
        "failures": failures,
        "rows": sum(r["rows"] for r in finished),
        "dedup": dedup_summary,
        "stages": {name: s.to_dict() for name, s in stats.items()},
        "packed": None if manifest is None else {
            k: manifest[k] for k in ("tokenizer", "seq_len", "strategy", "documents", "tokens", "sequences",
                                     "padding_fraction", "truncated_documents", "shards")
        } | {"output": join(cfg.output, PACKED_DIR)},
    }
    markdown = (
        f"# winnow curate\n\nOutput: `{out_dir}`  \nShards: {len(inputs)} "
        f"({summary['shards_skipped_as_done']} already done, {len(failures)} failed)  \n"
        f"Documents written: {summary['rows']:,}\n\n" + funnel_markdown(stats)
    )
    if manifest is not None:
        markdown += (f"\nPacked: {manifest['sequences']:,} sequences of <= {manifest['seq_len']:,} tokens "
                     f"({manifest['tokens']:,} tokens, padding {100 * manifest['padding_fraction']:.3f}%, "
                     f"{manifest['truncated_documents']:,} documents split) in `{join(cfg.output, PACKED_DIR)}`\n")
    try:
        write_bytes_atomic(join(cfg.output, "summary.json"), json.dumps(summary, indent=1).encode(),
                           cfg.storage_options)
        write_bytes_atomic(join(cfg.output, "summary.md"), markdown.encode(), cfg.storage_options)
    except OSError as exc:
        # A full disk or a lost bucket: say so, and still say which shards failed (below).
        if not failures:
            raise
        logger.error("could not write the run summary: %s", exc)
    try:
        report = write_report(cfg.output, cfg.storage_options)
        create_link_artifact(key="winnow-report", link=report if "://" in report else f"file://{report}",
                             link_text=report, description="run report (HTML): funnel, languages, lengths, "
                                                           "duplicates, packing")
    except Exception as exc:  # noqa: BLE001 - the report is a view of the data, never a reason to fail the run
        logger.warning("could not write the run report: %s", exc)
    create_markdown_artifact(key="winnow-funnel", markdown=markdown, description="winnow run summary")
    create_table_artifact(key="winnow-funnel-table", table=funnel_rows(stats),
                          description="documents and bytes per stage and drop reason")
    final_dir = join(cfg.output, PACKED_DIR) if manifest is not None else (
        join(cfg.output, DEDUPED_DIR) if dedup_summary is not None else out_dir)
    create_link_artifact(key="winnow-output", link=final_dir if "://" in final_dir else f"file://{final_dir}",
                         link_text=final_dir, description="where this run wrote its final output")
    if manifest is not None:
        shown = {k: v for k, v in manifest.items() if k != "stats"}
        create_markdown_artifact(key="winnow-manifest", description="packed dataset manifest",
                                 markdown=f"# Packed output\n\n`{final_dir}`\n\n```json\n{json.dumps(shown, indent=1)}\n```\n")
    print_summary(summary, stats)
    if failures:
        raise ShardFailures(
            f"{len(failures)} of {len(inputs)} shard(s) failed; the rest are written. "
            "Rerun the same command to retry only the failed shards:\n  " + "\n  ".join(failures)
        )
    return summary


def run_task(task, cfg: WinnowConfig, *args):
    """Run one task to completion: in this process with threads, in a worker otherwise, so that
    the flow's process stays small (models and big arrays live in the workers)."""
    if cfg.runner.kind == "threads":
        return task(*args)
    return task.submit(*args).result()


def dedup_phase(outputs: list[str], cfg: WinnowConfig, cfg_dict: dict[str, Any], n_docs: int):
    """Signatures (map over batches of shards) -> components (map over bands) -> pairwise merges
    (map per round) -> clusters split by shard -> filter (map over batches of shards); all in
    one task when the corpus is small."""
    from tasks.dedup import band_tasks, component_path, merge_components, params
    from winnow.shardio import _fs, input_stamp

    work = join(cfg.output, DEDUP_WORK)
    n = len(outputs)
    # The dedup work is valid for exactly these curated shards and parameters: if a shard was
    # redone since (or the settings changed), start the dedup work over.
    key = json.dumps({"inputs": [(o, input_stamp(o, cfg.storage_options)) for o in outputs],
                      "params": params(cfg.dedup), "partitions": cfg.dedup.partitions, "index": cfg.dedup.index,
                      "verify": cfg.dedup.verify_threshold})
    fs, key_path = _fs(join(work, "_done", "inputs.json"), cfg.storage_options)
    previous = fs.cat_file(key_path).decode() if fs.exists(key_path) else None
    if previous != key:
        _, work_path = _fs(work, cfg.storage_options)
        if fs.exists(work_path):
            fs.rm(work_path, recursive=True)
        write_bytes_atomic(join(work, "_done", "inputs.json"), key.encode(), cfg.storage_options)
    deduped = [join(cfg.output, DEDUPED_DIR, shard_name(k)) for k in range(n)]
    # About four batches per worker: enough to balance, few enough that scheduling stays cheap.
    size = max(1, math.ceil(n / (4 * cfg.runner.workers)))
    batches = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
    if n_docs < cfg.dedup.single_task_below:
        summary = run_task(dedup_all, cfg, outputs, work, cfg_dict)
    else:
        for f in [dedup_signatures.submit([outputs[k] for k in b], b, work, cfg_dict) for b in batches]:
            f.result()
        units = band_tasks(cfg.dedup)
        for f in [dedup_band.submit(b, p, n, work, cfg_dict) for b, p in units]:
            f.result()

        def merge_round(pairs: list[list[str]], outs: list[str]) -> None:
            for f in [dedup_merge_pair.submit(p, o, cfg_dict) for p, o in zip(pairs, outs)]:
                f.result()

        final = merge_components([component_path(work, b, p) for b, p in units], work, cfg.storage_options,
                                 merge_round)
        summary = run_task(dedup_clusters, cfg, final, n, work, cfg_dict)
    futures = [dedup_filter.submit([outputs[k] for k in b], b, work, [deduped[k] for k in b], cfg_dict)
               for b in batches]
    results = [r for f in futures for r in f.result()]
    return deduped, summary, [r["stats"] for r in results]


def print_summary(summary: dict[str, Any], stats) -> None:
    from rich.table import Table

    table = Table(title=f"winnow curate: {summary['rows']:,} documents -> {summary['output']}", title_justify="left")
    for col in ("stage", "what", "docs_in", "docs_out", "kept", "bytes_in", "bytes_out"):
        table.add_column(col, no_wrap=col == "what", justify="left" if col in ("stage", "what") else "right")
    for row in funnel_rows(stats):
        table.add_row(*row.values())
    console = Console(stderr=True, width=max(120, Console(stderr=True).width))
    console.print(table)
    console.print(f"shards: {summary['shards']} ({summary['shards_skipped_as_done']} already done, "
                  f"{summary['shards_failed']} failed)", highlight=False)
    packed = summary.get("packed")
    if packed:
        console.print(f"packed: {packed['sequences']:,} sequences x {packed['seq_len']:,} tokens "
                      f"({packed['strategy']}, padding {100 * packed['padding_fraction']:.3f}%, "
                      f"{packed['truncated_documents']:,} documents split) -> {packed['output']}", highlight=False)


def task_runner_for(cfg: WinnowConfig):
    if cfg.runner.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=cfg.runner.workers)
    if cfg.runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.runner.dask_address:
            return DaskTaskRunner(address=cfg.runner.dask_address)
        # One thread per worker process: the stages hold the GIL (parsing, spaCy, hashing).
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": cfg.runner.workers, "threads_per_worker": 1, "processes": True,
            "dashboard_address": ":0"})
    return ThreadPoolTaskRunner(max_workers=cfg.runner.workers)


def share_temporary_server(cfg: WinnowConfig) -> None:
    """Worker processes must report to the same Prefect API as the flow. With no PREFECT_API_URL,
    each would otherwise start a temporary server of its own (about 10 s and 200 MB each), and the
    flow's UI would not see their task runs: start the flow's temporary server now and hand its
    address to the workers through the environment they inherit."""
    from prefect.settings import PREFECT_API_URL

    if cfg.runner.kind == "threads" or PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        return
    if cfg.runner.dask_address:
        raise ConfigError("runner.dask_address points at a remote Dask cluster: set PREFECT_API_URL to a Prefect "
                          "server that its workers can reach (a temporary local server is not).")
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the same instance Prefect's ephemeral mode uses in this process
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url


def run_curate(cfg: WinnowConfig) -> dict[str, Any]:
    """Run the flow with the task runner the config asks for."""
    share_temporary_server(cfg)
    return curate.with_options(task_runner=task_runner_for(cfg))(cfg.model_dump(mode="json"))
