"""Dedup's shuffle files. A map step writes ONE file per producer with one row group per
destination partition (empty ones too), and consumer d reads row group d of every producer's
file: on S3 that is one PUT per producer and two ranged GETs per (producer, consumer), against
a PUT and a GET per pair for a file per pair (a PUT costs as much as 12.5 GETs, and every
object is one more to list and expire). Used by the band keys and the connected-components
rounds."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.storage import AtomicFile, StorageError, StorageOptions, filesystem, is_local

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
