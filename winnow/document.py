"""The one document record every stage reads and writes, and its Parquet schema."""

from __future__ import annotations

import json
from collections.abc import Callable
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


def valid_str(value: str) -> bool:
    """True when ``value`` can be written as UTF-8: no lone surrogates (valid JSON can hold
    ``"\\ud800"``, and Arrow, fastText and every tokenizer fail on it)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_STR_FIELDS = ("id", "url", "source_file", "content_type")


def record_problem(doc: Document) -> str | None:
    """Why a document read from an input cannot go through the pipeline (``bad_text``,
    ``bad_field:NAME``, ``bad_annotations``), or None. Readers drop and count such records, so
    one bad record never fails its shard."""
    if not isinstance(doc.text, str) or not valid_str(doc.text):
        return "bad_text"
    for name in _STR_FIELDS:
        value = getattr(doc, name)
        if value is not None and (not isinstance(value, str) or not valid_str(value)):
            return f"bad_field:{name}"
    if doc.crawl_date is not None and not isinstance(doc.crawl_date, datetime):
        return "bad_field:crawl_date"
    if doc.source_offset is not None and (not isinstance(doc.source_offset, int)
                                          or isinstance(doc.source_offset, bool)):
        return "bad_field:source_offset"
    if doc.annotations:
        try:
            encoded = json.dumps(doc.annotations, ensure_ascii=False)
        except (TypeError, ValueError):
            return "bad_annotations"
        if not valid_str(encoded):
            return "bad_annotations"
    return None


def _writable(value: Any) -> Any:
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value


def _annotations_json(annotations: dict[str, Any], sanitise: bool = False) -> str | None:
    if not annotations:
        return None
    text = json.dumps(annotations, ensure_ascii=False)
    return _writable(text) if sanitise else text


def documents_to_table(docs: list[Document]) -> pa.Table:
    """Documents as an Arrow table of the one schema (annotations as a JSON object per row).

    A lone surrogate that a stage produced is written as "?" rather than failing the shard
    (readers drop such input records before any stage sees them)."""
    try:
        return _to_table(docs)
    except (UnicodeEncodeError, pa.ArrowException):
        return _to_table([Document(_writable(d.id), _writable(d.text), _writable(d.url), d.crawl_date,
                                   _writable(d.source_file), d.source_offset, _writable(d.content_type),
                                   d.annotations) for d in docs], sanitise=True)


def _to_table(docs: list[Document], sanitise: bool = False) -> pa.Table:
    columns = {
        "id": [d.id for d in docs],
        "url": [d.url for d in docs],
        "text": [d.text for d in docs],
        "crawl_date": [d.crawl_date for d in docs],
        "source_file": [d.source_file for d in docs],
        "source_offset": [d.source_offset for d in docs],
        "content_type": [d.content_type for d in docs],
        "annotations": [_annotations_json(d.annotations, sanitise) for d in docs],
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def table_to_documents(table: pa.Table, on_bad: Callable[[int, str], None] | None = None) -> list[Document]:
    """Inverse of :func:`documents_to_table`; tolerates tables with only id/text (plus any subset).

    A row that cannot be a document (a ``text`` that is not a string or holds a lone surrogate,
    a ``url`` of another type, annotations that are not a JSON object...; see
    :func:`record_problem`) is left out and reported as ``on_bad(row, reason)``; without
    ``on_bad`` it raises ValueError. A whole column of the wrong type is reported per row."""
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
        doc = Document(
            id=str(ids[i]) if ids[i] is not None else "",
            text=texts[i] if texts[i] is not None else "",
            url=urls[i],
            crawl_date=dates[i],
            source_file=files[i],
            source_offset=offsets[i],
            content_type=ctypes[i],
            annotations=ann if ann is not None else {},
        )
        reason = "bad_annotations" if ann is None else record_problem(doc)
        if reason is None:
            docs.append(doc)
        elif on_bad is None:
            raise ValueError(f"row {i}: {reason}")
        else:
            on_bad(i, reason)
    return docs


def _annotations(value: Any) -> dict[str, Any] | None:
    """A row's annotations: a JSON object (schema 2) or key/JSON-value pairs (schema 1); None
    when the value is neither."""
    if not value:
        return {}
    try:
        if isinstance(value, str):
            loaded = json.loads(value)
            return loaded if isinstance(loaded, dict) else None
        return {str(k): json.loads(v) for k, v in value}
    except (TypeError, ValueError):
        return None
