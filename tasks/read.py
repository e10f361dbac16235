"""Read stage: JSONL(.gz) and Parquet inputs are documents already (no ingest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from winnow.document import Document
from winnow.shardio import read_documents
from winnow.stage import SourceStage, StageConfig, register
from winnow.stats import StageStats


@register
class ReadStage(SourceStage[StageConfig]):
    """No settings (no config section): JSONL needs a `text` field; `id`, `url`, `crawl_date` or
    `date` are used when present and other scalar fields become `meta.*` annotations."""

    name = "read"
    config_model = None
    order = 1
    formats: ClassVar[tuple[str, ...]] = ("jsonl", "parquet")
    summary = "JSONL/Parquet inputs read as documents (a `text` field; id/url/date used when present)."

    def read(self, path: str, stats: StageStats) -> Iterator[Document]:
        for doc in read_documents(path, stats, self.env.storage_options):
            n = doc.n_bytes
            stats.take_in(n)
            stats.keep(n)
            yield doc
