"""Read stage: JSONL(.gz) and Parquet inputs are documents already (no ingest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field

from winnow.document import Document
from winnow.inputs import read_documents
from winnow.stage import SourceStage, StageConfig, register
from winnow.stats import StageStats


class ReadConfig(StageConfig):
    """Settings of the read stage (YAML section `read`)."""
    max_text_chars: int = Field(5_000_000, ge=1,
                                description="Texts longer than this are dropped (text_too_long) before any "
                                            "stage sees them: every per-document stage is linear in the text, "
                                            "so this bounds the time one record can take.")


@register
class ReadStage(SourceStage[ReadConfig]):
    """JSONL needs a `text` field; `id`, `url`, `crawl_date` or `date` are used when present and
    other scalar fields become `meta.*` annotations."""

    name = "read"
    config_model = ReadConfig
    order = 1
    formats: ClassVar[tuple[str, ...]] = ("jsonl", "parquet")
    summary = "JSONL/Parquet inputs read as documents (a `text` field; id/url/date used when present)."

    def read(self, path: str, stats: StageStats) -> Iterator[Document]:
        for doc in read_documents(path, stats, self.env.storage_options):
            n = doc.n_bytes
            stats.take_in(n)
            if len(doc.text) > self.cfg.max_text_chars:
                stats.drop("text_too_long", n, f"{doc.source_file}:{doc.source_offset}: {len(doc.text):,} characters",
                           bad_input=True)
                continue
            stats.keep(n)
            yield doc
