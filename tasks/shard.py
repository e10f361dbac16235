"""One shard through the per-document stages: read -> [ingest] -> lid -> quality -> Parquet.

Per-document stages are chained as generators, so a shard streams through all of them in
one pass with memory bounded by a Parquet row group, not by the shard.
"""

from __future__ import annotations

import logging
import posixpath
import time
from contextlib import ExitStack
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from winnow.config import WinnowConfig
from winnow.document import Document
from winnow.shardio import ShardWriter, input_format, mark_done, read_documents, read_done
from winnow.stats import StageStats

from tasks import lid as lid_stage
from tasks import quality as quality_stage
from tasks.quality import Reject
from tasks.ingest import STAGE as INGEST, ingest_warc

log = logging.getLogger("winnow")

READ = "read"

# (name, enabled?, run) in pipeline order. A stage is a plain function over documents.
DocStage = Callable[[Iterable[Document], WinnowConfig, StageStats, "Reject | None"], Iterator[Document]]
DOC_STAGES: list[tuple[str, Callable[[WinnowConfig], bool], DocStage]] = [
    (lid_stage.STAGE, lambda c: c.lid.enabled, lambda d, c, s, r: lid_stage.language_id(d, c.lid, s)),
    (quality_stage.STAGE, lambda c: c.quality.enabled, lambda d, c, s, r: quality_stage.quality(d, c.quality, s, r)),
]


def check_resources(cfg: WinnowConfig) -> None:
    """Load every model the enabled stages need, so a bad path fails before any shard runs."""
    if cfg.lid.enabled:
        lid_stage.check_lid(cfg.lid)
    if cfg.quality.enabled:
        quality_stage.check_quality(cfg.quality)
    if cfg.dedup.enabled and cfg.dedup.index:
        from tasks.dedup import check_index

        check_index(cfg.dedup, cfg.storage_options)
    if cfg.rephrase.enabled:
        from tasks.rephrase import templates

        templates(cfg.rephrase)
    if cfg.pack.enabled:
        from tasks.pack import check_pack

        check_pack(cfg.pack)


def run_stages(docs: Iterable[Document], cfg: WinnowConfig, stages: dict[str, StageStats],
               on_reject: Reject | None = None) -> Iterator[Document]:
    for name, enabled, run in DOC_STAGES:
        if enabled(cfg):
            docs = run(docs, cfg, stages.setdefault(name, StageStats()), on_reject)
    return iter(docs)


def process_shard(input_path: str | list[str], output_path: str, config: WinnowConfig | dict[str, Any]) -> dict[str, Any]:
    """Process one input file (or a group of them, in order) into one output shard; return its
    stats (``{stage: dict}``).

    A shard whose done-marker exists for the same input is skipped and its recorded stats
    returned, so reruns after a crash only redo unfinished shards.
    """
    cfg = config if isinstance(config, WinnowConfig) else WinnowConfig.model_validate(config)
    so = cfg.storage_options
    done = read_done(output_path, so)
    if done is not None and done.get("input") == input_path:
        return {"skipped": True, "stats": done["stats"], "rows": done.get("rows", 0)}

    started = time.perf_counter()
    stages: dict[str, StageStats] = {}
    files = [input_path] if isinstance(input_path, str) else list(input_path)

    def source() -> Iterator[Document]:
        for path in files:
            if input_format(path) == "warc":
                yield from ingest_warc(path, cfg.ingest, stages.setdefault(INGEST, StageStats()), so)
            else:
                stats = stages.setdefault(READ, StageStats())
                yield from _count_read(read_documents(path, stats, so), stats)

    # Stage order in the stats: the source stage first.
    stages[INGEST if input_format(files[0]) == "warc" else READ] = StageStats()
    with ExitStack() as stack:
        on_reject = None
        if cfg.quality.enabled and cfg.quality.write_rejected:
            rejected = stack.enter_context(ShardWriter(rejected_path(output_path), so,
                                                       rows_per_group=cfg.rows_per_row_group))
            on_reject = lambda doc, reason: rejected.write(doc)  # noqa: E731
        writer = stack.enter_context(ShardWriter(output_path, so, rows_per_group=cfg.rows_per_row_group))
        writer.write_all(run_stages(source(), cfg, stages, on_reject))
    rows = writer.rows
    next(iter(stages.values())).seconds = time.perf_counter() - started
    serialised = {name: s.to_dict() for name, s in stages.items()}
    mark_done(output_path, {"input": input_path, "rows": rows, "stats": serialised}, so)
    return {"skipped": False, "stats": serialised, "rows": rows}


def rejected_path(output_path: str) -> str:
    """OUTPUT/documents/part-N.parquet -> OUTPUT/rejected/part-N.parquet"""
    parent, name = posixpath.split(output_path)
    return posixpath.join(posixpath.dirname(parent), "rejected", name)


def _count_read(docs: Iterable[Document], stats: StageStats) -> Iterator[Document]:
    for d in docs:
        n = d.n_bytes
        stats.take_in(n)
        stats.keep(n)
        yield d
