"""One shard through the per-document stages: read -> [ingest] -> ... -> Parquet + done-marker.

Per-document stages are chained as generators, so a shard streams through all of them in
one pass with memory bounded by a Parquet row group, not by the shard.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from winnow.config import WinnowConfig
from winnow.shardio import ShardWriter, input_format, mark_done, read_documents, read_done
from winnow.stats import StageStats

from tasks.ingest import STAGE as INGEST, ingest_warc

log = logging.getLogger("winnow")

READ = "read"


def process_shard(input_path: str, output_path: str, config: WinnowConfig | dict[str, Any]) -> dict[str, Any]:
    """Process one input file into one output shard; return its stats (``{stage: dict}``).

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
    if input_format(input_path) == "warc":
        stats = stages[INGEST] = StageStats()
        docs = ingest_warc(input_path, cfg.ingest, stats, so)
    else:
        stats = stages[READ] = StageStats()
        docs = _count_read(read_documents(input_path, stats, so), stats)

    with ShardWriter(output_path, so, rows_per_group=cfg.rows_per_row_group) as writer:
        writer.write_all(docs)
    rows = writer.rows
    stats.seconds = time.perf_counter() - started
    serialised = {name: s.to_dict() for name, s in stages.items()}
    mark_done(output_path, {"input": input_path, "rows": rows, "stats": serialised}, so)
    return {"skipped": False, "stats": serialised, "rows": rows}


def _count_read(docs, stats: StageStats):
    for d in docs:
        n = d.n_bytes
        stats.take_in(n)
        stats.keep(n)
        yield d
