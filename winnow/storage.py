"""Storage: file systems, paths, storage errors in one line, the output probe, atomic and
Parquet writers, temp-file cleanup. Nothing here knows documents or done-markers.

Every path goes through fsspec, so local paths and ``s3://bucket/key`` work the same way.
Writes are atomic: locally, data goes to a hidden temp file beside the final one and is
renamed into place; on object stores the final key is written in place, which S3 makes
visible only once the upload completes (a failed one is aborted, never completed).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any, BinaryIO, Self

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

# fsspec's options of every path (credentials, endpoint_url, anon, ...): the one type of every
# storage_options parameter; None means fsspec's defaults plus winnow's (with_storage_defaults).
StorageOptions = dict[str, Any] | None


# Both error types are here because storage_call passes both through unchanged: an input
# listing raises InputError from inside it.
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


def read_bytes(path: str, storage_options: StorageOptions = None) -> bytes:
    """The whole content of a (small) file."""
    fs, p = filesystem(path, storage_options)
    data: bytes = fs.cat_file(p)
    return data


# ----------------------------------------------------------------------------- errors, probe


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


# ----------------------------------------------------------------------------- atomic writes


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


class _CommitOrAbort:
    """Leaving a ``with`` block commits what was written, or aborts it when the block raised."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class AtomicFile(_CommitOrAbort):
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

    def open(self) -> Any:
        """The handle to write to (what ``with`` gives)."""
        self.fh = self.fs.open(self.target, "wb")
        return self.fh

    def commit(self) -> None:
        """Make what was written visible under ``final``; on failure, nothing is."""
        try:
            self.fh.close()
            if self.local:
                os.replace(self.target, self.final)
        except BaseException:  # e.g. the disk filled up while the last bytes were written
            self.abort()
            raise

    def __enter__(self) -> Any:
        return self.open()

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
    """A whole (small) Parquet file as a table."""
    fs, p = filesystem(path, storage_options)
    with fs.open(p, "rb") as fh:
        return pq.read_table(fh)


class ParquetShardWriter(_CommitOrAbort):
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

    def open(self) -> Self:
        """Start the file (what ``with`` does); then :meth:`commit` or :meth:`abort` it."""
        self._fh = self._file.open()
        self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        return self

    def __enter__(self) -> Self:
        return self.open()

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

    def commit(self) -> None:
        """Write what is buffered and the footer, and put the file in place."""
        try:
            self.flush()
            if self._writer is not None:
                self._writer.close()
        except BaseException:  # e.g. the disk filled up while the footer was written
            self.abort()
            raise
        self._file.commit()

    def abort(self) -> None:
        """Leave nothing at the final path."""
        self._drop_writer()
        self._file.abort()

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
