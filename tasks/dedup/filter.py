"""Phase 4, filter: keep a document unless it is in a cluster and is not its root (the
smallest id: the earliest document in input order); record the cluster size, optionally write
the kept one several times (rehydration)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from winnow.config import output_settings
from winnow.document import Document
from winnow.resume import ShardRef, ShardResult, derive_shard
from winnow.stats import StageStats
from winnow.storage import StorageOptions, read_table
from winnow.tasks.dedup.config import DedupConfig
from winnow.tasks.dedup.layout import NEW, STAGE, cluster_path, clusters_dir


def filter_shard(docs: Iterable[Document], shard: int, work: str, cfg: DedupConfig, stats: StageStats,
                 so: StorageOptions = None) -> Iterator[Document]:
    """Stage 4 for one shard: drop non-representative cluster members, record cluster sizes."""
    table = read_table(cluster_path(clusters_dir(work), shard), so)
    members = dict(zip(table.column("row").to_pylist(),
                       zip(table.column("root").to_pylist(), table.column("size").to_pylist())))
    thresholds = sorted(cfg.upsample.items())
    me = int(NEW) | shard << 32
    for row, doc in enumerate(docs):
        n = doc.n_bytes
        stats.take_in(n)
        root, size = members.get(row, (me | row, 1))
        if root != (me | row):
            stats.drop("near_duplicate", n)
            continue
        doc.annotate(STAGE, "cluster_size", size)
        stats.counters[f"cluster_size:{_size_bucket(size)}"] += 1
        copies = 1
        for min_size, c in thresholds:
            if size >= min_size:
                copies = c
        for k in range(copies):
            stats.keep(n)
            yield doc if k == 0 else Document(id=f"{doc.id}#copy{k}", text=doc.text, url=doc.url,
                                               crawl_date=doc.crawl_date, source_file=doc.source_file,
                                               source_offset=doc.source_offset, content_type=doc.content_type,
                                               annotations=dict(doc.annotations))


def _size_bucket(size: int) -> str:
    for bound in (1, 2, 5, 10, 100, 1000):
        if size <= bound:
            return f"<={bound}"
    return ">1000"


def filter_unit(shards: list[ShardRef], indices: list[int], work: str, outs: list[str], cfg: DedupConfig,
                key: str, storage_options: StorageOptions = None,
                rows_per_group: int = 2000) -> list[ShardResult]:
    """Phase 4 for a batch of shards: each writes its deduplicated shard and marker."""
    # The work key covers the dedup settings and the index stamps; no listing per task here.
    settings = {**output_settings(cfg), "work_key": key}

    def filtered(k: int) -> Callable[[Iterable[Document], StageStats], Iterator[Document]]:
        return lambda docs, stats: filter_shard(docs, k, work, cfg, stats, storage_options)

    return [derive_shard(ref, out, STAGE, settings, filtered(k), storage_options, rows_per_group)
            for ref, k, out in zip(shards, indices, outs, strict=True)]


@dataclass(frozen=True)
class FilterWork:
    """One mapped task of phase 4: :func:`filter_unit` over a batch of shards."""

    shards: list[ShardRef]
    indices: list[int]
    work: str
    outs: list[str]
    cfg: DedupConfig
    key: str
    storage_options: StorageOptions = None
    rows_per_group: int = 2000

    def __call__(self) -> list[ShardResult]:
        return filter_unit(self.shards, self.indices, self.work, self.outs, self.cfg, self.key,
                           self.storage_options, self.rows_per_group)

    def label(self) -> str:
        return f"{self.indices[0]}-{self.indices[-1]}"
