"""The one IO layer: listing inputs, reading documents, writing shards atomically.

Every path goes through fsspec, so local paths and ``s3://bucket/key`` work the same way.
Writes are atomic: locally, data goes to a hidden temp file beside the final one and is
renamed into place; on object stores the final key is written in place, which S3 makes
visible only once the upload completes (a failed one is aborted, never completed). Whether a
shard is finished, and with which settings, is the business of :mod:`winnow.resume`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from winnow.document import SCHEMA, Document, documents_to_table, record_problem, table_to_documents
from winnow.stats import StageStats
from winnow.warc import parse_warc_date

WARC_SUFFIXES = (".warc", ".warc.gz", ".warc.zst")  # ARC (pre-2009 format) is not supported
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
WET_WAT_SUFFIXES = (".wet.gz", ".wat.gz", ".wet", ".wat")
StorageOptions = dict[str, Any] | None


class InputError(ValueError):
    """An input path that cannot be used (missing, unsupported format, unreachable storage)."""


class StorageError(ValueError):
    """Storage that cannot be used as configured (no credentials, unreachable, no such bucket)."""


# ----------------------------------------------------------------------------- file systems


# S3 answers bursts of 503 SlowDown under load (Common Crawl's bucket does). botocore's legacy
# default gives up after 5 attempts; "adaptive" retries with exponential backoff and full
# jitter, and slows this client's request rate while it is throttled. A user's own
# config_kwargs.retries win. s3fs retries the same errors again around each call (5 times).
S3_RETRIES = {"max_attempts": 10, "mode": "adaptive"}
# Every fsspec S3 file system in the process gets these defaults, also the ones made outside this
# module; options passed with config_kwargs replace them there, hence also with_storage_defaults.
fsspec.config.conf.setdefault("s3", {}).setdefault("config_kwargs", {"retries": dict(S3_RETRIES)})


def with_storage_defaults(path: str, storage_options: StorageOptions) -> dict[str, Any]:
    """``storage_options`` for ``path`` with winnow's defaults added where the user set none."""
    options = dict(storage_options or {})
    if path.startswith(("s3://", "s3a://")):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("retries", dict(S3_RETRIES))
        options["config_kwargs"] = config
    return options


def filesystem(path: str, storage_options: StorageOptions = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec file system of ``path`` and the path inside it."""
    fs, inner = url_to_fs(path, **with_storage_defaults(path, storage_options))
    return fs, inner


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Local disk: renames are atomic and folders must exist, unlike on object stores."""
    return isinstance(fs, LocalFileSystem)


def ensure_parent(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Create the parent folder of ``path`` on a local disk. Object stores need none, and s3fs'
    makedirs would create a missing (e.g. mistyped) bucket."""
    if is_local(fs):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)


def join(base: str, *parts: str) -> str:
    """Join path parts for local paths and URLs alike."""
    return posixpath.join(base.rstrip("/"), *parts) if "://" in base else os.path.join(base, *parts)


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``: an exception in the one line a user is shown."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def describe_storage_error(exc: BaseException, url: str) -> str | None:
    """One line for the storage failures people hit (credentials, endpoint, bucket), or None
    when ``exc`` is not one of them."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else name
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    bucket = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return (f"{url}: no {scheme.upper()} credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                "AWS_PROFILE, or storage_options {key: ..., secret: ...}, or {anon: true} for a public bucket)")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionRefusedError",
                "ServerDisconnectedError", "ReadTimeoutError", "ConnectionClosedError"):
        return f"{url}: cannot reach the storage endpoint ({text}); check storage_options endpoint_url and the network"
    if isinstance(exc, PermissionError) or "AccessDenied" in text or "Forbidden" in text or \
            name in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"{url}: access denied ({text}); check the credentials and the bucket policy"
    if "NoSuchBucket" in text or "bucket does not exist" in text.lower() or name == "NoSuchBucket":
        return f"{url}: bucket {bucket!r} does not exist (winnow never creates buckets)"
    return None


def storage_call(url: str, what: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (a listing or a probe of ``url``), turning storage failures into one-line
    :class:`StorageError` messages instead of tracebacks from deep inside botocore."""
    try:
        return fn()
    except (InputError, StorageError):
        raise
    except Exception as exc:
        message = describe_storage_error(exc, url)
        if message is None:
            if isinstance(exc, FileNotFoundError):
                raise
            message = f"{url}: cannot {what}: {error_line(exc)}"
        raise StorageError(message) from None


def check_writable(output: str, storage_options: StorageOptions = None) -> None:
    """Fail in one line, before any work, when ``output`` cannot be written: a path that is a
    file, a read-only or pseudo file system, missing credentials, an unreachable endpoint, a
    bucket that does not exist (never created: a typo must not make a new bucket)."""
    fs, root = storage_call(output, "open the output", lambda: filesystem(output, storage_options))
    probe = posixpath.join(root.rstrip("/"), f".winnow-probe-{uuid.uuid4().hex[:8]}")
    if is_local(fs):
        if os.path.exists(root) and not os.path.isdir(root):
            raise StorageError(f"output {output} is a file, not a folder")
        try:
            os.makedirs(root, exist_ok=True)
            with open(probe, "wb") as fh:
                fh.write(b"")
            os.unlink(probe)
        except OSError as exc:
            raise StorageError(f"cannot write to output {output}: {exc.strerror or exc}") from None
        return

    def write_and_remove() -> None:
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)

    storage_call(output, "write to the output", write_and_remove)


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InputFile:
    """An input file as the listing saw it. ``stamp`` changes when the file does (size plus
    ETag or modification time), so done-markers notice a replaced input."""

    path: str
    size: int
    stamp: str


@dataclass
class Listing:
    """The input files of a run, and the files under its input paths that cannot be inputs
    (reported, not silently dropped)."""
    files: list[InputFile]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    def skipped_summary(self, limit: int = 3) -> str | None:
        """'skipped 4 file(s): 3 unsupported format (.txt, .html), 1 WET/WAT (no HTML)', or None."""
        if not self.skipped:
            return None
        by_reason: dict[str, list[str]] = {}
        for path, why in self.skipped:
            by_reason.setdefault(why, []).append(path)
        parts = []
        for why, paths in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(posixpath.basename(p) for p in paths[:limit]) + (", ..." if len(paths) > limit else "")
            parts.append(f"{len(paths)} {why} ({shown})")
        return f"skipped {len(self.skipped)} file(s): " + "; ".join(parts)


def input_format(path: str) -> str:
    """The reader a file needs, from its name; an unknown suffix is an InputError naming the formats."""
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


def _skip_reason(path: str) -> str | None:
    name = posixpath.basename(path).lower()
    if name.startswith((".", "_")):
        return "hidden or metadata file"
    if name.endswith(WET_WAT_SUFFIXES) or ".wet." in name or ".wat." in name:
        return "WET/WAT file (no HTML)"
    try:
        input_format(path)
    except InputError:
        return "unsupported format"
    return None


def path_stamps(patterns: Sequence[str], storage_options: StorageOptions = None) -> list[list[str]]:
    """[path, stamp] of every file that files, folders (recursive) or globs name, sorted; a
    name that matches nothing is stamped "missing" (the stage's check says so before work).
    Done-markers carry these, so an edited list or a retrained model is never passed off."""
    files: list[list[str]] = []
    for pattern in patterns:
        fs, root = filesystem(pattern, storage_options)
        if any(c in root for c in "*?["):
            entries = fs.glob(root, detail=True)
        elif fs.isdir(root):
            entries = fs.find(root, detail=True)
        else:
            entries = {root: fs.info(root)} if fs.exists(root) else {}
        if not entries:
            files.append([pattern, "missing"])
        for path, info in sorted(entries.items()):
            if info.get("type") != "directory":
                files.append([path, _stamp(info)])
    return files


def _stamp(info: dict[str, Any]) -> str:
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or ""
    return f"{info.get('size', 0)}:{str(version).strip(chr(34))}"


def list_inputs(patterns: Iterable[str], storage_options: StorageOptions = None) -> Listing:
    """Expand files, directories (recursive) and globs into a sorted list of input files, with
    sizes and change stamps taken from the listing itself (one request per folder on S3, not
    one per file). Files that cannot be inputs are reported in ``skipped`` with the reason;
    naming one explicitly, or a pattern that matches nothing usable, is an error."""
    found: dict[str, InputFile] = {}
    skipped: list[tuple[str, str]] = []
    for pattern in patterns:
        fs, root = filesystem(pattern, storage_options)
        prefix = pattern.split("://", 1)[0] + "://" if "://" in pattern else ""

        def listed(root: str = root, fs: fsspec.AbstractFileSystem = fs,
                   pattern: str = pattern) -> dict[str, dict[str, Any]]:
            if any(c in root for c in "*?["):
                entries = dict(fs.glob(root, detail=True))
                if not entries:
                    _check_bucket(fs, root, pattern)
                return entries
            if fs.isdir(root):
                return _find_all(fs, root, pattern)
            if fs.exists(root):
                input_format(root)  # a file named explicitly must be readable as input
                return {root: fs.info(root)}
            _check_bucket(fs, root, pattern)
            raise InputError(f"{pattern}: no such file or directory")

        entries = storage_call(pattern, "list the input", listed)
        usable = 0
        base = root.rstrip("/") + "/"
        for path, info in sorted(entries.items()):
            if info.get("type") == "directory":
                continue
            full = prefix + path if prefix and not path.startswith(prefix) else path
            folders = path[len(base):].split("/")[:-1] if path.startswith(base) else []
            if any(part.startswith("_") for part in folders):
                # Metadata folders by the convention pyarrow and Spark follow (winnow's done-markers,
                # _decontam/, _temporary/): never inputs, and not worth a line.
                continue
            why = "in a hidden folder" if any(part.startswith(".") for part in folders) else _skip_reason(path)
            if why:
                skipped.append((full, why))
                continue
            usable += 1
            found[full] = InputFile(full, int(info.get("size") or 0), _stamp(info))
        if not usable:
            raise InputError(f"{pattern}: matched no WARC, JSONL or Parquet files"
                             + (f" ({Listing([], skipped).skipped_summary()})" if skipped else ""))
    return Listing([found[k] for k in sorted(found)], skipped)


def _check_bucket(fs: fsspec.AbstractFileSystem, root: str, pattern: str) -> None:
    """On an object store, a path in a bucket that does not exist says so (as the output check
    does), not "no such file"."""
    if is_local(fs) or "://" not in pattern:
        return
    bucket = root.split("/", 1)[0]
    if bucket and not fs.exists(bucket):
        raise StorageError(f"{pattern}: bucket {bucket!r} does not exist (winnow never creates buckets)")


def _find_all(fs: fsspec.AbstractFileSystem, root: str, pattern: str) -> dict[str, dict[str, Any]]:
    """Every file under a folder. fsspec's walk leaves out a sub-folder it cannot read without a
    word; locally that is an InputError naming the folder, since its files would be missing."""
    if is_local(fs):
        # fsspec's on_error does not reach its recursion (fsspec 2026.9), so walk once more here.
        def unreadable(exc: OSError) -> None:
            raise InputError(f"{pattern}: cannot read folder {exc.filename or '?'} "
                             f"({exc.strerror or exc}); its files would be left out")
        for _ in os.walk(root, onerror=unreadable):
            pass
    return dict(fs.find(root, detail=True))


def group_inputs(files: Sequence[InputFile], target_mb: float) -> list[list[InputFile]]:
    """Consecutive files grouped until a group holds ``target_mb`` MB (0: one file per group);
    sizes come from the listing."""
    if target_mb <= 0:
        return [[f] for f in files]
    groups: list[list[InputFile]] = []
    size = 0.0
    for f in files:
        n = f.size / 1e6
        if not groups or size + n > target_mb:
            groups.append([])
            size = 0.0
        groups[-1].append(f)
        size += n
    return groups


@contextmanager
def open_binary(path: str, storage_options: StorageOptions = None) -> Iterator[BinaryIO]:
    """A binary file handle for a local path (native IO, the hot path) or any fsspec URL."""
    if "://" not in path or path.startswith("file://"):
        local = path[len("file://"):] if path.startswith("file://") else path
        with open(local, "rb", buffering=1 << 20) as fh:  # native IO: the hot path for local crawls
            yield fh
    else:
        with fsspec.open(path, "rb", **with_storage_defaults(path, storage_options)) as fh:
            yield fh


def stable_id(*parts: object) -> str:
    """A document id for inputs without one: the same for the same source position on every run."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _is_damage(exc: BaseException) -> bool:
    """True for an error that means the file's bytes are damaged (a truncated gzip stream, a
    corrupt Parquet footer); False for one that means it could not be read (no permission, the
    network, a disk error: errno set). Damage is counted and the file's good part kept; the
    rest fails the shard, which is retried and never marked done with documents missing."""
    if isinstance(exc, (EOFError, zlib.error, pa.ArrowInvalid)):
        return True
    return isinstance(exc, OSError) and exc.errno is None and not isinstance(
        exc, (PermissionError, FileNotFoundError, IsADirectoryError, ConnectionError, TimeoutError))


def _count_bad(stats: StageStats, where: str, reason: str) -> None:
    # The record's position only: its text may be anything (and is often the problem).
    stats.error(reason, f"{where}: record skipped ({reason})")


def read_jsonl(path: str, stats: StageStats, storage_options: StorageOptions = None,
               text_field: str = "text", id_field: str = "id") -> Iterator[Document]:
    """JSON lines -> Documents. Unknown scalar fields are kept as ``meta.*`` annotations. A line
    that cannot be a document (not JSON, no string text, a lone surrogate) is counted and
    skipped; a UTF-8 byte-order mark at the start is skipped."""
    with open_binary(path, storage_options) as raw:
        fh: Any = gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw
        line_no = 0
        try:
            for line_no, line in enumerate(fh, 1):
                if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]  # written by Windows tools; json.loads rejects it
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
                date = obj.get("crawl_date") or obj.get("date")
                doc = Document(
                    id=str(doc_id) if doc_id is not None else stable_id(path, line_no),
                    text=obj[text_field],
                    url=obj.get("url") if isinstance(obj.get("url"), str) else None,
                    crawl_date=parse_warc_date(date if isinstance(date, str) else None),
                    source_file=path,
                    source_offset=line_no,
                    annotations=meta,
                )
                reason = record_problem(doc)
                if reason:
                    _count_bad(stats, f"{path}:{line_no}", reason)
                    continue
                yield doc
        except (OSError, EOFError, zlib.error) as exc:
            if not _is_damage(exc):
                raise
            stats.error("corrupt_input", f"{path}: {exc} (after line {line_no}; earlier lines kept)")


def read_parquet(path: str, stats: StageStats, storage_options: StorageOptions = None,
                 batch_size: int = 1024) -> Iterator[Document]:
    """Documents from a Parquet file. A file without a text column or a corrupt one is counted,
    not raised; so is each row that cannot be a document (``table_to_documents``). A file that
    cannot be read (permissions, network) raises: its shard fails and is retried."""
    with open_binary(path, storage_options) as fh:
        row = 0

        def bad(i: int, reason: str) -> None:
            _count_bad(stats, f"{path}: row {row + i}", reason)

        try:
            pf = pq.ParquetFile(fh)
            if "text" not in pf.schema_arrow.names:
                stats.error("no_text_field", f"{path}: Parquet file has no 'text' column")
                return
            for batch in pf.iter_batches(batch_size=batch_size):
                yield from table_to_documents(pa.Table.from_batches([batch]), bad)
                row += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            if not _is_damage(exc) and not isinstance(exc, pa.ArrowException):
                raise
            stats.error("corrupt_input", f"{path}: {exc}")


def read_documents(path: str, stats: StageStats | None = None,
                   storage_options: StorageOptions = None) -> Iterator[Document]:
    """Documents from a JSONL or Parquet shard (WARC needs the ingest stage)."""
    stats = stats if stats is not None else StageStats()
    fmt = input_format(path)
    if fmt == "jsonl":
        return read_jsonl(path, stats, storage_options)
    if fmt == "parquet":
        return read_parquet(path, stats, storage_options)
    raise InputError(f"{path}: WARC input must go through the ingest stage")


def read_bytes(path: str, storage_options: StorageOptions = None) -> bytes:
    """The whole content of a (small) file."""
    fs, p = filesystem(path, storage_options)
    data: bytes = fs.cat_file(p)
    return data


# ----------------------------------------------------------------------------- atomic writes


def shard_name(index: int, prefix: str = "part", suffix: str = ".parquet") -> str:
    """part-00012.parquet: zero-padded so names sort in input order."""
    return f"{prefix}-{index:05d}{suffix}"


def temp_path(final: str) -> str:
    """Hidden sibling of ``final`` that a write goes to first (``remove_stale_temp_files`` knows
    the pattern)."""
    parent, name = posixpath.split(final)
    return posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")


def discard(fs: fsspec.AbstractFileSystem, tmp: str) -> None:
    """Remove a failed write's temp file, best effort: the error being raised says more."""
    try:
        if fs.exists(tmp):
            fs.rm_file(tmp)
    except Exception:  # noqa: BLE001 - best effort
        pass


def atomic_put(fs: fsspec.AbstractFileSystem, tmp: str, final: str) -> None:
    """Move a finished temp file to its final name."""
    if is_local(fs):
        os.replace(tmp, final)
    else:
        # Object stores have no rename; mv is copy+delete and the copy appears atomically.
        fs.mv(tmp, final)


class AtomicFile:
    """A file handle whose content appears under ``final`` whole or not at all.

    On a local disk it writes a hidden temp file and renames it into place. An object store
    commits an upload only when it completes (one PUT, or CompleteMultipartUpload), so there
    the final key is written directly and a failed upload is aborted, never committed: a temp
    object and a server-side copy would cost three more requests per file for nothing (fsspec
    commits what was written when a ``with`` block raises, hence the explicit abort)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, final: str) -> None:
        self.fs, self.final = fs, final
        self.local = is_local(fs)
        self.target = temp_path(final) if self.local else final
        ensure_parent(fs, final)
        self.fh: Any = None

    def __enter__(self) -> Any:
        self.fh = self.fs.open(self.target, "wb")
        return self.fh

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self.fh.close()
                if self.local:
                    os.replace(self.target, self.final)
                return
            except BaseException:  # e.g. the disk filled up while the last bytes were written
                self.abort()
                raise
        self.abort()

    def abort(self) -> None:
        """Leave nothing visible: the temp file removed, or the upload aborted."""
        fh = self.fh
        if fh is not None and not self.local and hasattr(fh, "discard"):
            try:
                fh.discard()  # s3fs: abort the multipart upload; a small buffer is dropped
            except Exception:  # noqa: BLE001 - best effort: the error being raised says more
                pass
            fh.closed = True
            return
        if fh is not None:
            try:
                fh.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        if self.local:
            discard(self.fs, self.target)


def write_bytes_atomic(path: str, data: bytes, storage_options: StorageOptions = None) -> None:
    """Write a small file atomically: readers see the old content or the whole new one, never a part."""
    fs, final = filesystem(path, storage_options)
    if not is_local(fs):
        fs.pipe_file(final, data)  # one PUT (or a multipart upload): committed whole or not at all
        return
    with AtomicFile(fs, final) as fh:
        fh.write(data)


def write_table_atomic(table: pa.Table, path: str, storage_options: StorageOptions = None, **kwargs: Any) -> None:
    """A whole Parquet table (zstd) written atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", **kwargs)
    write_bytes_atomic(path, sink.getvalue().to_pybytes(), storage_options)


def read_table(path: str, storage_options: StorageOptions = None) -> pa.Table:
    """A whole Parquet file as a table (small files: components, clusters)."""
    fs, p = filesystem(path, storage_options)
    with fs.open(p, "rb") as fh:
        return pq.read_table(fh)


class ParquetShardWriter:
    """Stream rows into one Parquet file of ``schema``: buffered items become a row group every
    ``rows_per_group`` rows or ``max_group_bytes``; ``to_table(items)`` turns a buffer into an
    Arrow table. Use as a context manager: on success the temp file is renamed into place; on
    error it is removed and nothing is left at the final path."""

    def __init__(self, path: str, schema: pa.Schema, to_table: Callable[[list[Any]], pa.Table],
                 storage_options: StorageOptions = None, rows_per_group: int = 2000,
                 max_group_bytes: int = 64 << 20, size_of: Callable[[Any], int] = lambda _: 0) -> None:
        self.path = path
        self.fs, self._final = filesystem(path, storage_options)
        self._file = AtomicFile(self.fs, self._final)
        self.schema = schema
        self.rows_per_group = rows_per_group
        self.max_group_bytes = max_group_bytes
        self._to_table = to_table
        self._size_of = size_of
        self.rows = 0
        self._buf: list[Any] = []
        self._buf_bytes = 0
        self._fh: Any = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetShardWriter:
        self._fh = self._file.__enter__()
        self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        return self

    def write(self, item: Any) -> None:
        self._buf.append(item)
        self._buf_bytes += self._size_of(item)
        if len(self._buf) >= self.rows_per_group or self._buf_bytes >= self.max_group_bytes:
            self.flush()

    def write_all(self, items: Iterable[Any]) -> int:
        """Write every item; returns the rows written so far."""
        for item in items:
            self.write(item)
        return self.rows

    def flush(self) -> None:
        if self._buf:
            assert self._writer is not None
            self._writer.write_table(self._to_table(self._buf))
            self.rows += len(self._buf)
            self._buf, self._buf_bytes = [], 0

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._drop_writer()
            self._file.abort()
            return
        try:
            self.flush()
            if self._writer is not None:
                self._writer.close()
        except BaseException as error:  # e.g. the disk filled up while the footer was written
            self._drop_writer()
            self._file.__exit__(type(error), error, None)
            raise
        self._file.__exit__(None, None, None)

    def _drop_writer(self) -> None:
        """Forget the Parquet writer of a shard being abandoned. Left to the garbage collector,
        an open one writes its footer into the closed file ("Exception ignored in
        ParquetWriter.__del__")."""
        writer, self._writer = self._writer, None
        if writer is not None and self._file.local:
            with suppress(Exception):  # finished into the temp file that abort() removes
                writer.close()
        elif writer is not None:
            writer.is_open = False  # closing would complete the remote upload being aborted


class ShardWriter(ParquetShardWriter):
    """A Parquet shard of Documents (the one document schema)."""

    def __init__(self, path: str, storage_options: StorageOptions = None, rows_per_group: int = 2000,
                 max_group_bytes: int = 64 << 20) -> None:
        super().__init__(path, SCHEMA, documents_to_table, storage_options, rows_per_group, max_group_bytes,
                         size_of=lambda d: len(d.text))

    def __enter__(self) -> ShardWriter:
        super().__enter__()
        return self


def remove_stale_temp_files(root: str, storage_options: StorageOptions = None) -> int:
    """Delete the hidden temp files (``.NAME.tmp-XXXX``) a killed run left under ``root``.

    Only safe when no other run writes to ``root`` at the same time: the caller holds the
    output lock (:mod:`winnow.lock`)."""
    fs, path = filesystem(root, storage_options)
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


def prune_shards(folder: str, keep: Iterable[str], storage_options: StorageOptions = None,
                 pattern: str = "part-*.parquet") -> int:
    """Delete shards (and their done-markers) under ``folder`` that this run did not write, e.g.
    part-00011 of an earlier run over more inputs: a folder read must see only this run's data."""
    fs, root = filesystem(folder, storage_options)
    if not fs.exists(root):
        return 0
    keep_names = {posixpath.basename(k) for k in keep}
    removed = 0
    for p in fs.glob(posixpath.join(root, pattern)):
        name = posixpath.basename(p)
        if name in keep_names:
            continue
        fs.rm_file(p)
        from winnow.resume import marker_path  # noqa: PLC0415 - resume imports this module

        marker = marker_path(posixpath.join(root, name))
        if fs.exists(marker):
            fs.rm_file(marker)
        removed += 1
    return removed


# ----------------------------------------------------------------------------- shuffle files
# A map step writes ONE file per producer with one row group per destination partition (empty
# ones too), and consumer d reads row group d of every producer's file: on S3 that is one PUT per
# producer and two ranged GETs per (producer, consumer), against a PUT and a GET per pair for a
# file per pair (a PUT costs as much as 12.5 GETs, and every object is one more to list and
# expire). Used by the dedup band keys and the connected-components rounds.

PartitionSource = tuple[dict[str, Any], Any]  # (columns: name -> numpy array, destination of each row)


def write_partitioned(path: str, schema: pa.Schema, sources: Sequence[PartitionSource], n_parts: int,
                      storage_options: StorageOptions = None) -> int:
    """One file, row group d = the rows of every source addressed to destination d, written
    atomically; rows are gathered one destination at a time, so the output never exists twice
    in memory. Returns the file's size, which readers pass on so that opening it costs no HEAD."""
    groups = []
    for columns, dest in sources:
        order = np.argsort(dest.astype(np.uint16) if n_parts <= 1 << 16 else dest, kind="stable")
        groups.append((columns, order, np.concatenate([[0], np.cumsum(np.bincount(dest, minlength=n_parts))])))
    fs, final = filesystem(path, storage_options)
    with AtomicFile(fs, final) as fh:
        with pq.ParquetWriter(fh, schema, compression="zstd", use_dictionary=False,
                              write_statistics=False) as writer:
            for d in range(n_parts):
                rows = [(columns, order[bounds[d]:bounds[d + 1]]) for columns, order, bounds in groups]
                table = pa.table({name: np.concatenate([columns[name][idx] for columns, idx in rows])
                                  if rows else np.zeros(0, dtype=schema.field(name).type.to_pandas_dtype())
                                  for name in schema.names}, schema=schema)
                writer.write_table(table, row_group_size=max(1, table.num_rows))
        size = int(fh.tell())
    return size


class _RangedFile(io.RawIOBase):
    """A remote file read by ranged GETs only: its size is known (no HEAD) and nothing is read
    ahead (a consumer wants one row group, not the blocks after it). pyarrow reads the footer
    and then, with pre_buffer, the row group's column chunks in one request."""

    def __init__(self, fs: Any, path: str, size: int) -> None:
        super().__init__()
        self._fs, self._path, self._size, self._pos = fs, path, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        data = self._fs.cat_file(self._path, start=self._pos, end=self._pos + n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def read_row_group(path: str, part: int, n_parts: int, schema: pa.Schema, size: int | None = None,
                   storage_options: StorageOptions = None) -> pa.Table:
    """Row group ``part`` of a file written by :func:`write_partitioned`; a file with another
    partition count or schema is a StorageError (written by a run with other settings)."""
    fs, p = filesystem(path, storage_options)
    # A local path is opened by Arrow itself (a quarter cheaper per file than through Python).
    fh: Any = p if is_local(fs) else _RangedFile(fs, p, fs.size(p) if size is None else size)
    try:
        pf = pq.ParquetFile(fh, pre_buffer=True)
        if pf.num_row_groups != n_parts or pf.schema_arrow.names != schema.names:
            raise StorageError(f"{path}: expected {n_parts} row groups of {schema.names}, found "
                               f"{pf.num_row_groups} of {pf.schema_arrow.names} (written with other partition "
                               "counts? its done-marker is stale: remove the folder to start over)")
        return pf.read_row_group(part)
    finally:
        if isinstance(fh, io.IOBase):
            fh.close()


def iter_partition(paths: Sequence[str], part: int, n_parts: int, schema: pa.Schema,
                   storage_options: StorageOptions = None, sizes: Sequence[int] | None = None) -> Iterator[pa.Table]:
    """Row group ``part`` of each file, in order. Remote files are read 16 at a time: a consumer
    reads one small piece of every producer's file, so request latency, not bandwidth, is what
    it waits on."""
    known = list(sizes) if sizes is not None and len(sizes) == len(paths) else [None] * len(paths)
    remote = bool(paths) and "://" in paths[0] and not paths[0].startswith("file://")
    if not remote:
        for path, size in zip(paths, known, strict=True):
            yield read_row_group(path, part, n_parts, schema, size, storage_options)
        return
    with ThreadPoolExecutor(max_workers=16) as pool:
        for lo in range(0, len(paths), 16):
            yield from pool.map(lambda k: read_row_group(paths[k], part, n_parts, schema, known[k], storage_options),
                                range(lo, min(len(paths), lo + 16)))


def read_partition(paths: Sequence[str], part: int, n_parts: int, schema: pa.Schema,
                   storage_options: StorageOptions = None, sizes: Sequence[int] | None = None) -> dict[str, Any]:
    """Row group ``part`` of each file, concatenated, as numpy columns: everything addressed to
    this consumer."""
    tables = list(iter_partition(paths, part, n_parts, schema, storage_options, sizes))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    del tables
    out = {name: np.asarray(table.column(name).to_numpy()) for name in schema.names}
    del table
    pa.default_memory_pool().release_unused()  # decoded pages: give them back before the work starts
    return out

