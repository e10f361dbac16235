"""The one document record every stage reads and writes, and its Parquet schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

# Annotations are one JSON object per row (a string column): any stage's results (floats, lists,
# small dicts) fit without a schema change per stage, and every reader handles a string column;
# `datasets` cannot read Arrow's map type, which schema version 1 used.
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("crawl_date", pa.timestamp("ms", tz="UTC")),
        pa.field("source_file", pa.string()),
        pa.field("source_offset", pa.int64()),
        pa.field("content_type", pa.string()),
        pa.field("annotations", pa.string()),
    ],
    metadata={b"winnow.schema_version": b"2"},
)


@dataclass(slots=True)
class Document:
    """The one record every stage reads and writes: text, provenance and the stages' annotations."""
    id: str
    text: str
    url: str | None = None
    crawl_date: datetime | None = None
    source_file: str | None = None
    source_offset: int | None = None
    content_type: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)

    def annotate(self, stage: str, key: str, value: Any) -> None:
        """Record a stage's result under ``stage.key`` (e.g. ``lid.lang``)."""
        self.annotations[f"{stage}.{key}"] = value

    @property
    def n_bytes(self) -> int:
        """UTF-8 size of the text: what the funnel counts in bytes (surrogates kept, never an encoding error)."""
        return len(self.text.encode("utf-8", "surrogatepass"))


def documents_to_table(docs: list[Document]) -> pa.Table:
    """Documents as an Arrow table of the one schema (annotations as a JSON object per row)."""
    columns = {
        "id": [d.id for d in docs],
        "url": [d.url for d in docs],
        "text": [d.text for d in docs],
        "crawl_date": [d.crawl_date for d in docs],
        "source_file": [d.source_file for d in docs],
        "source_offset": [d.source_offset for d in docs],
        "content_type": [d.content_type for d in docs],
        "annotations": [json.dumps(d.annotations, ensure_ascii=False) if d.annotations else None for d in docs],
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def table_to_documents(table: pa.Table) -> list[Document]:
    """Inverse of :func:`documents_to_table`; tolerates tables with only id/text (plus any subset)."""
    names = set(table.column_names)
    n = table.num_rows

    def col(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in names else [None] * n

    ids, texts = col("id"), col("text")
    urls, dates, files, offsets, ctypes, annos = (
        col("url"), col("crawl_date"), col("source_file"), col("source_offset"),
        col("content_type"), col("annotations"),
    )
    docs = []
    for i in range(n):
        ann = _annotations(annos[i])
        docs.append(
            Document(
                id=str(ids[i]) if ids[i] is not None else "",
                text=texts[i] if texts[i] is not None else "",
                url=urls[i],
                crawl_date=dates[i],
                source_file=files[i],
                source_offset=offsets[i],
                content_type=ctypes[i],
                annotations=ann,
            )
        )
    return docs


def _annotations(value: Any) -> dict[str, Any]:
    """A row's annotations: a JSON object (schema 2) or key/JSON-value pairs (schema 1)."""
    if not value:
        return {}
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return {k: json.loads(v) for k, v in value}
