"""The one shard reader/writer: WARC, JSONL(.gz) and Parquet in; Parquet (zstd) out.

Every path goes through fsspec, so local paths and ``s3://bucket/key`` work the same way.
Writes are atomic: data goes to a hidden temp file that is renamed into place, and a shard
only counts as finished once its done-marker (which also carries its stats) exists.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from winnow.document import SCHEMA, Document, documents_to_table, table_to_documents
from winnow.stats import StageStats
from winnow.warc import parse_warc_date

WARC_SUFFIXES = (".warc", ".warc.gz", ".warc.zst")  # ARC (pre-2009 format) is not supported
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
DONE_DIR = "_done"


class InputError(ValueError):
    """An input path that cannot be used (missing, unsupported format)."""


def input_format(path: str) -> str:
    name = path.lower()
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(
        f"{path}: unsupported input format (expected one of "
        f"{', '.join(WARC_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES)})"
    )


def _protocol_prefix(original: str) -> str:
    return original.split("://", 1)[0] + "://" if "://" in original else ""


def list_inputs(patterns: Iterable[str], storage_options: dict[str, Any] | None = None) -> list[str]:
    """Expand files, directories and globs into a sorted, de-duplicated list of input files.

    Directories are searched recursively for files of a supported format. Files named
    explicitly must have a supported suffix. WET/WAT files are skipped: they hold no HTML.
    """
    found: set[str] = set()
    for pattern in patterns:
        fs, root = url_to_fs(pattern, **(storage_options or {}))
        prefix = _protocol_prefix(pattern)
        if any(c in root for c in "*?["):
            matches = fs.glob(root)
        elif fs.isdir(root):
            matches = [p for p in fs.find(root) if _supported(p)]
        elif fs.exists(root):
            input_format(root)  # raises with a clear message
            matches = [root]
        else:
            raise InputError(f"{pattern}: no such file or directory")
        matches = [m for m in matches if _supported(m) and not _is_wet_or_wat(m)]
        if not matches:
            raise InputError(f"{pattern}: matched no WARC, JSONL or Parquet files")
        found.update(prefix + m if prefix and not m.startswith(prefix) else m for m in matches)
    return sorted(found)


def group_inputs(paths: list[str], target_mb: float, storage_options: dict[str, Any] | None = None
                 ) -> list[list[str]]:
    """Consecutive files grouped until a group holds ``target_mb`` MB (0: one file per group)."""
    if target_mb <= 0:
        return [[p] for p in paths]
    groups: list[list[str]] = []
    size = 0.0
    for p in paths:
        fs, path = url_to_fs(p, **(storage_options or {}))
        n = fs.size(path) / 1e6
        if not groups or size + n > target_mb:
            groups.append([])
            size = 0.0
        groups[-1].append(p)
        size += n
    return groups


def _supported(path: str) -> bool:
    try:
        input_format(path)
        return True
    except InputError:
        return False


def _is_wet_or_wat(path: str) -> bool:
    return path.lower().endswith((".wet.gz", ".wat.gz", ".warc.wet.gz", ".warc.wat.gz", ".wet", ".wat"))


@contextmanager
def open_binary(path: str, storage_options: dict[str, Any] | None = None) -> Iterator[io.BufferedIOBase]:
    if "://" not in path or path.startswith("file://"):
        local = path[len("file://"):] if path.startswith("file://") else path
        with open(local, "rb", buffering=1 << 20) as fh:  # native IO: the hot path for local crawls
            yield fh
    else:
        with fsspec.open(path, "rb", **(storage_options or {})) as fh:
            yield fh


def stable_id(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def read_jsonl(path: str, stats: StageStats, storage_options: dict[str, Any] | None = None,
               text_field: str = "text", id_field: str = "id") -> Iterator[Document]:
    """JSON lines -> Documents. Unknown scalar fields are kept as ``meta.*`` annotations."""
    with open_binary(path, storage_options) as raw:
        fh = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        line_no = 0
        try:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError:
                    stats.error("non_utf8_line", f"{path}:{line_no} is not UTF-8; line skipped")
                    continue
                except json.JSONDecodeError as exc:
                    stats.error("bad_json_line", f"{path}:{line_no}: {exc}; line skipped")
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get(text_field), str):
                    stats.error("no_text_field", f"{path}:{line_no}: no string field {text_field!r}")
                    continue
                doc_id = obj.get(id_field)
                meta = {
                    f"meta.{k}": v for k, v in obj.items()
                    if k not in (text_field, id_field, "url", "crawl_date", "date")
                    and isinstance(v, (str, int, float, bool))
                }
                yield Document(
                    id=str(doc_id) if doc_id is not None else stable_id(path, line_no),
                    text=obj[text_field],
                    url=obj.get("url") if isinstance(obj.get("url"), str) else None,
                    crawl_date=parse_warc_date(obj.get("crawl_date") or obj.get("date")
                                               if isinstance(obj.get("crawl_date") or obj.get("date"), str)
                                               else None),
                    source_file=path,
                    source_offset=line_no,
                    annotations=meta,
                )
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            stats.error("corrupt_input", f"{path}: {exc} (after line {line_no}; earlier lines kept)")


def read_parquet(path: str, stats: StageStats, storage_options: dict[str, Any] | None = None,
                 batch_size: int = 1024) -> Iterator[Document]:
    try:
        with open_binary(path, storage_options) as fh:
            pf = pq.ParquetFile(fh)
            if "text" not in pf.schema_arrow.names:
                stats.error("no_text_field", f"{path}: Parquet file has no 'text' column")
                return
            for batch in pf.iter_batches(batch_size=batch_size):
                yield from table_to_documents(pa.Table.from_batches([batch]))
    except (OSError, pa.ArrowInvalid) as exc:
        stats.error("corrupt_input", f"{path}: {exc}")


def read_documents(path: str, stats: StageStats,
                   storage_options: dict[str, Any] | None = None) -> Iterator[Document]:
    """Documents from a JSONL or Parquet shard (WARC needs the ingest stage: see tasks.ingest)."""
    fmt = input_format(path)
    if fmt == "jsonl":
        return read_jsonl(path, stats, storage_options)
    if fmt == "parquet":
        return read_parquet(path, stats, storage_options)
    raise InputError(f"{path}: WARC input must go through the ingest stage")


# ----------------------------------------------------------------------------- output side


def shard_name(index: int, prefix: str = "part", suffix: str = ".parquet") -> str:
    return f"{prefix}-{index:05d}{suffix}"


def join(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts) if "://" in base else os.path.join(base, *parts)


def _fs(path: str, storage_options: dict[str, Any] | None) -> tuple[fsspec.AbstractFileSystem, str]:
    return url_to_fs(path, **(storage_options or {}))


def _temp_path(final: str) -> str:
    """Hidden sibling of ``final`` that a write goes to first (``remove_stale_temp_files`` knows
    the pattern)."""
    parent, name = posixpath.split(final)
    return posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")


def _discard(fs: fsspec.AbstractFileSystem, tmp: str) -> None:
    """Remove a failed write's temp file, best effort: the error being raised says more."""
    try:
        if fs.exists(tmp):
            fs.rm_file(tmp)
    except Exception:  # noqa: BLE001
        pass


def _atomic_put(fs: fsspec.AbstractFileSystem, tmp: str, final: str) -> None:
    if isinstance(fs, LocalFileSystem):
        os.replace(tmp, final)
    else:
        # Object stores have no rename; mv is copy+delete and the copy appears atomically.
        fs.mv(tmp, final)


class ShardWriter:
    """Stream Documents into one Parquet file, flushing a row group every ``rows_per_group``.

    Use as a context manager: on success the temp file is renamed into place; on error it
    is removed and nothing is left at the final path.
    """

    def __init__(self, path: str, storage_options: dict[str, Any] | None = None,
                 rows_per_group: int = 2000, max_group_bytes: int = 64 << 20,
                 schema: pa.Schema = SCHEMA) -> None:
        self.path = path
        self.fs, self._final = _fs(path, storage_options)
        self.fs.makedirs(posixpath.dirname(self._final), exist_ok=True)
        self._tmp = _temp_path(self._final)
        self.rows_per_group = rows_per_group
        self.max_group_bytes = max_group_bytes
        self.schema = schema
        self.rows = 0
        self._buf: list[Document] = []
        self._buf_bytes = 0
        self._fh = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ShardWriter:
        self._fh = self.fs.open(self._tmp, "wb")
        self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        return self

    def write(self, doc: Document) -> None:
        self._buf.append(doc)
        self._buf_bytes += len(doc.text)
        if len(self._buf) >= self.rows_per_group or self._buf_bytes >= self.max_group_bytes:
            self._flush()

    def write_all(self, docs: Iterable[Document]) -> int:
        for d in docs:
            self.write(d)
        return self.rows

    def _flush(self) -> None:
        if self._buf:
            assert self._writer is not None
            self._writer.write_table(documents_to_table(self._buf))
            self.rows += len(self._buf)
            self._buf, self._buf_bytes = [], 0

    def __exit__(self, exc_type, exc, tb) -> None:
        ok = exc_type is None
        try:
            try:
                if ok:
                    self._flush()
                if self._writer is not None:
                    self._writer.close()
            finally:
                if self._fh is not None:
                    self._fh.close()
            if ok:
                _atomic_put(self.fs, self._tmp, self._final)
        except BaseException:
            ok = False  # e.g. the disk filled up while the footer was written
            raise
        finally:
            if not ok:
                _discard(self.fs, self._tmp)


def remove_stale_temp_files(root: str, storage_options: dict[str, Any] | None = None) -> int:
    """Delete the hidden temp files (``.NAME.tmp-XXXX``) a killed run left under ``root``.

    Only safe when no other run writes to ``root`` at the same time (one run per output folder).
    """
    fs, path = _fs(root, storage_options)
    if not fs.exists(path):
        return 0
    entries = fs.find(path, withdirs=True, detail=True)
    removed: list[str] = []
    for p in sorted(entries, key=len):  # parents first; what is under a removed folder goes with it
        name = posixpath.basename(p.rstrip("/"))
        if not (name.startswith(".") and ".tmp-" in name) or any(p.startswith(r + "/") for r in removed):
            continue
        if entries[p].get("type") == "directory":
            fs.rm(p, recursive=True)
        else:
            fs.rm_file(p)
        removed.append(p.rstrip("/"))
    return len(removed)


def read_bytes(path: str, storage_options: dict[str, Any] | None = None) -> bytes:
    fs, p = _fs(path, storage_options)
    return fs.cat_file(p)


def write_bytes_atomic(path: str, data: bytes, storage_options: dict[str, Any] | None = None) -> None:
    fs, final = _fs(path, storage_options)
    fs.makedirs(posixpath.dirname(final), exist_ok=True)
    tmp = _temp_path(final)
    try:
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        _atomic_put(fs, tmp, final)
    except BaseException:  # a full disk or a lost connection: leave no temp file behind
        _discard(fs, tmp)
        raise


def done_marker_path(shard_path: str) -> str:
    parent, name = posixpath.split(shard_path) if "://" in shard_path else os.path.split(shard_path)
    return join(parent, DONE_DIR, name + ".json")


def mark_done(shard_path: str, info: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    info = {**info, "shard": shard_path, "finished_at": datetime.now(timezone.utc).isoformat()}
    write_bytes_atomic(done_marker_path(shard_path), json.dumps(info, indent=1).encode(), storage_options)


def read_done(shard_path: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The done-marker of a finished shard, or None if the shard has to be (re)done."""
    fs, marker = _fs(done_marker_path(shard_path), storage_options)
    try:
        with fs.open(marker, "rb") as fh:
            info = json.loads(fh.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not fs.exists(_fs(shard_path, storage_options)[1]):
        return None  # marker without data (someone deleted the shard): redo it
    return info


def input_stamp(shard_path: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """When a shard written by winnow was finished (from its done-marker). Outputs derived
    from it record this, so they are redone when the shard is redone."""
    done = read_done(shard_path, storage_options)
    return None if done is None else done.get("finished_at")
