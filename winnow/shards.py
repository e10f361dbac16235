"""Document shards: their names and the Parquet writer of the one document schema."""

from __future__ import annotations

from winnow.document import SCHEMA, documents_to_table
from winnow.storage import ParquetShardWriter, StorageOptions


def shard_name(index: int, prefix: str = "part", suffix: str = ".parquet") -> str:
    """part-00012.parquet: zero-padded so names sort in input order."""
    return f"{prefix}-{index:05d}{suffix}"


class ShardWriter(ParquetShardWriter):
    """A Parquet shard of Documents (the one document schema)."""

    def __init__(self, path: str, storage_options: StorageOptions = None, rows_per_group: int = 2000,
                 max_group_bytes: int = 64 << 20) -> None:
        super().__init__(path, SCHEMA, documents_to_table, storage_options, rows_per_group, max_group_bytes,
                         size_of=lambda d: len(d.text))
