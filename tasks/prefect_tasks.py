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
def curate_shard(input_path: str | list[str], output_path: str, config: dict[str, Any]) -> dict[str, Any]:
    return process_shard(input_path, output_path, config)


@task(name="check-resources", retries=0, persist_result=False)
def check_resources_task(config: dict[str, Any]) -> None:
    """Load the models the enabled stages need, in a worker: with process or Dask workers the
    flow's own process then never loads spaCy, fastText or a tokenizer (hundreds of MB)."""
    from tasks.shard import check_resources

    check_resources(_cfg(config))


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


# ---- MinHash dedup stages (see tasks/dedup.py); each is skipped when its done-marker exists.

def _cfg(config: dict[str, Any]):
    from winnow.config import WinnowConfig

    return WinnowConfig.model_validate(config)


def _marker(work: str, name: str) -> str:
    from winnow.shardio import join

    return join(work, "_done", name)


# Signatures and filtering cost milliseconds per shard: they run as tasks over batches of shards
# (each shard keeps its own output and done-marker), so a process pool does not spend most of its
# time scheduling hundreds of tiny tasks.

def _batch_run_name() -> str:
    shards = task_run.parameters.get("shards") or [0]
    return f"{task_run.task_name.removeprefix('dedup-')} {shards[0]}-{shards[-1]}"


@task(name="dedup-signatures", task_run_name=_batch_run_name, retries=1, persist_result=False)
def dedup_signatures(doc_shards: list[str], shards: list[int], work: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    return [signatures_one(d, k, work, config) for d, k in zip(doc_shards, shards)]


def signatures_one(doc_shard: str, shard: int, work: str, config: dict[str, Any]) -> dict[str, Any]:
    from tasks.dedup import signatures_shard
    from winnow.shardio import _fs, read_documents, write_bytes_atomic
    from winnow.stats import StageStats

    cfg = _cfg(config)
    marker = _marker(work, f"signatures-{shard:05d}")
    fs, path = _fs(marker, cfg.storage_options)
    if fs.exists(path):
        return {"skipped": True}
    counts = signatures_shard(read_documents(doc_shard, StageStats(), cfg.storage_options), shard, work,
                              cfg.dedup, cfg.storage_options)
    write_bytes_atomic(marker, b"{}", cfg.storage_options)
    return counts


@task(name="dedup-band", task_run_name="band {band} range {part}", retries=1, persist_result=False)
def dedup_band(band: int, part: int, n_shards: int, work: str, config: dict[str, Any]) -> dict[str, Any]:
    from tasks.dedup import band_components
    from winnow.shardio import _fs, write_bytes_atomic

    cfg = _cfg(config)
    marker = _marker(work, f"band-{band:02d}-{part:04d}")
    fs, path = _fs(marker, cfg.storage_options)
    if fs.exists(path):
        return {"skipped": True}
    out = band_components(band, part, n_shards, work, cfg.dedup, cfg.storage_options)
    write_bytes_atomic(marker, b"{}", cfg.storage_options)
    return out


@task(name="dedup-merge", retries=1, persist_result=False)
def dedup_merge_pair(pair: list[str], out: str, config: dict[str, Any]) -> str:
    from tasks.dedup import merge_pair
    from winnow.shardio import _fs

    cfg = _cfg(config)
    fs, path = _fs(out, cfg.storage_options)
    if not fs.exists(path):  # written atomically: present means complete
        merge_pair(pair, out, cfg.storage_options)
    return out


@task(name="dedup-clusters", retries=1, persist_result=False)
def dedup_clusters(final: str, n_shards: int, work: str, config: dict[str, Any]) -> dict[str, Any]:
    import json

    from tasks.dedup import split_clusters
    from winnow.shardio import _fs, write_bytes_atomic

    cfg = _cfg(config)
    marker = _marker(work, "clusters.json")
    fs, path = _fs(marker, cfg.storage_options)
    if fs.exists(path):
        with fs.open(path, "rb") as fh:
            return json.loads(fh.read())
    summary = split_clusters(final, n_shards, work, cfg.storage_options)
    write_bytes_atomic(marker, json.dumps(summary).encode(), cfg.storage_options)
    return summary


def _derived_shard(doc_shard: str, out: str, config: dict[str, Any], stage: str, make_docs,
                   retry_if: str | None = None) -> dict[str, Any]:
    """One document shard -> one output shard through ``make_docs(docs, stats, cfg)``, skipped
    when its done-marker says it was made from the same input. With ``retry_if``, a shard whose
    stats count that error is written but not marked done, so the next run tries it again."""
    from winnow.shardio import ShardWriter, input_stamp, mark_done, read_documents, read_done
    from winnow.stats import StageStats

    cfg = _cfg(config)
    so = cfg.storage_options
    done = read_done(out, so)
    stamp = input_stamp(doc_shard, so)
    if done is not None and done.get("input") == doc_shard and done.get("input_stamp") == stamp:
        return {"skipped": True, "stats": done["stats"], "rows": done["rows"]}
    stats = StageStats()
    with ShardWriter(out, so, rows_per_group=cfg.rows_per_row_group) as writer:
        writer.write_all(make_docs(read_documents(doc_shard, StageStats(), so), stats, cfg))
    serialised = {stage: stats.to_dict()}
    if not (retry_if and stats.errors.get(retry_if)):
        mark_done(out, {"input": doc_shard, "input_stamp": stamp, "rows": writer.rows, "stats": serialised}, so)
    return {"skipped": False, "stats": serialised, "rows": writer.rows}


@task(name="dedup-filter", task_run_name=_batch_run_name, retries=1, persist_result=False)
def dedup_filter(doc_shards: list[str], shards: list[int], work: str, outs: list[str],
                 config: dict[str, Any]) -> list[dict[str, Any]]:
    return [filter_one(d, k, work, o, config) for d, k, o in zip(doc_shards, shards, outs)]


def filter_one(doc_shard: str, shard: int, work: str, out: str, config: dict[str, Any]) -> dict[str, Any]:
    from tasks.dedup import STAGE, filter_shard

    return _derived_shard(doc_shard, out, config, STAGE,
                          lambda docs, stats, cfg: filter_shard(docs, shard, work, cfg.dedup, stats, cfg.storage_options))


@task(name="rephrase", task_run_name="rephrase {shard}", retries=0, persist_result=False)
def rephrase_shard(doc_shard: str, shard: int, out: str, checkpoint: str, config: dict[str, Any]) -> dict[str, Any]:
    import json

    from tasks.rephrase import STAGE, Journal, build_backend, rephrase_documents
    from winnow.shardio import join, write_bytes_atomic

    def make_docs(docs, stats, cfg):
        so = cfg.storage_options
        journal = Journal(checkpoint, so)
        try:
            out_docs, report = rephrase_documents(docs, cfg.rephrase, build_backend(cfg.rephrase), journal, stats)
        finally:
            journal.close()
        parent, name = out.rsplit("/", 1)
        write_bytes_atomic(join(parent, "_report", name + ".jsonl"),
                           "".join(json.dumps(r) + "\n" for r in report).encode(), so)
        return out_docs

    # Chunks whose requests failed (server down, out of retries) are retried by the next run;
    # the journal keeps it from asking again for the ones that succeeded.
    return _derived_shard(doc_shard, out, config, STAGE, make_docs, retry_if="rephrase_request_failed")


@task(name="dedup-clusters-all", retries=1, persist_result=False)
def dedup_all(doc_shards: list[str], work: str, config: dict[str, Any]) -> dict[str, Any]:
    """Signatures to clusters in one task: the same steps, files and done-markers as the staged
    dedup, one after the other (the filter, which rewrites every shard, stays mapped)."""
    from tasks.dedup import band_tasks, component_path, merge_components

    cfg = _cfg(config)
    n, shards = len(doc_shards), list(range(len(doc_shards)))
    dedup_signatures.fn(doc_shards, shards, work, config)
    units = band_tasks(cfg.dedup)
    for band, part in units:
        dedup_band.fn(band, part, n, work, config)

    def merge_round(pairs: list[list[str]], merged: list[str]) -> None:
        for pair, out in zip(pairs, merged):
            dedup_merge_pair.fn(pair, out, config)

    final = merge_components([component_path(work, b, p) for b, p in units], work, cfg.storage_options, merge_round)
    return dedup_clusters.fn(final, n, work, config)
