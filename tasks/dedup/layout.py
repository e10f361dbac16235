"""Dedup's ids, file layout and schemas, defined once for every phase.

Document ids are ``NEW | shard << 32 | row``: they sort in input order, so the smallest id of
a cluster is its earliest document. Documents of an earlier run's index (``dedup.index``)
get ``k << INDEX_SHIFT | old id`` for index ``k``, below NEW, so they sort first and are
always the representative.

Work folder (``OUTPUT/dedup``)::

    params.json                          band-key parameters (what dedup.index checks)
    signatures/part-SSSSS.u32            full signatures, row r = document r of shard S
    bands/band=BB/group=GGGGG.parquet    band keys of a shard group, a row group per key range
    components/band=BB-range=RRRR.parquet  member -> root edges of a band and key range
    cc/                                  connected-components scratch (components.py)
    clusters/part-SSSSS.parquet          (row, root, size) of the clustered documents of shard S
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from winnow.storage import join

STAGE = "dedup"
DEDUPED_DIR = "deduped"  # under OUTPUT: the deduplicated shards
WORK_DIR = "dedup"  # under OUTPUT: everything else
PARAMS = "params.json"
CLUSTERS_DIR = "clusters"

NEW = np.uint64(1 << 62)
LOW32 = np.uint64(0xFFFFFFFF)
# 24 bits of shard number (16M shards); above them: NEW, or the index number of an earlier run.
SHARD_BITS = np.uint64(0xFFFFFF)
INDEX_SHIFT = np.uint64(56)
INDEX_ID_MASK = np.uint64((1 << 56) - 1)  # an index document's own id, without its source
THIS_RUN = 256  # the source number of this run's documents; index k is source k (k < 256)

KEY_SCHEMA = pa.schema([("key", pa.uint64()), ("doc", pa.uint64())])
COMPONENT_SCHEMA = pa.schema([("doc", pa.uint64()), ("root", pa.uint64())])
CLUSTER_SCHEMA = pa.schema([("row", pa.uint32()), ("root", pa.uint64()), ("size", pa.uint32())])


def doc_ids(shard: int, rows: np.ndarray) -> np.ndarray:
    """Run-unique document ids that sort in input order (shard, row): the smallest id of a
    cluster is its earliest document."""
    return NEW | (np.uint64(shard) << np.uint64(32)) | rows.astype(np.uint64)


def shard_of(ids: np.ndarray) -> np.ndarray:
    """The shard a document id of this run belongs to."""
    return ((np.asarray(ids, dtype=np.uint64) >> np.uint64(32)) & SHARD_BITS).astype(np.int64)


def index_ids(k: int, ids: np.ndarray) -> np.ndarray:
    """Ids of index ``k``'s documents as this run sees them: below NEW, tagged with ``k``."""
    return (np.uint64(k) << INDEX_SHIFT) | (ids & INDEX_ID_MASK)


def source_of(ids: np.ndarray) -> np.ndarray:
    """THIS_RUN for documents of this run, else the number of the index they come from."""
    return np.where((ids & NEW) != 0, np.uint64(THIS_RUN), ids >> INDEX_SHIFT)


def sig_path(work: str, shard: int) -> str:
    """Where a shard's full signatures are (verification reads rows of them)."""
    return join(work, "signatures", f"part-{shard:05d}.u32")


def band_dir(work: str, band: int) -> str:
    """The band-key files of one band, one per shard group."""
    return join(work, "bands", f"band={band:02d}")


def group_path(work: str, band: int, group: int) -> str:
    """The band keys of one group of shards (one row group per key range)."""
    return join(band_dir(work, band), f"group={group:05d}.parquet")


def group_output(work: str, group: int) -> str:
    """What the done-marker of a signature group is named after (its files span every band)."""
    return join(work, "bands", f"group={group:05d}")


def component_path(work: str, band: int, part: int) -> str:
    """Where the member->root edges of one band and key range are."""
    return join(work, "components", f"band={band:02d}-range={part:04d}.parquet")


def inputs_output(work: str) -> str:
    """What the done-marker of the whole dedup input is named after."""
    return join(work, "inputs")


def clusters_dir(work: str) -> str:
    return join(work, CLUSTERS_DIR)


def cluster_path(clusters: str, shard: int) -> str:
    """The (row, root, size) rows of shard ``shard``'s clustered documents, in ``clusters``."""
    return join(clusters, f"part-{shard:05d}.parquet")
