"""Phase 2, bands: for one band and key range, the documents sharing a key form a group whose
smallest id is its root (optionally verified against the full signatures), written as
member -> root edges. Index runs' band files join with their ids moved below this run's."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.resume import Marker, resumable
from winnow.storage import StorageOptions, filesystem, write_table_atomic
from winnow.tasks.dedup.config import DedupConfig
from winnow.tasks.dedup.layout import COMPONENT_SCHEMA, KEY_SCHEMA, band_dir, component_path, group_path, index_ids
from winnow.tasks.dedup.shuffle import read_partition
from winnow.tasks.dedup.signatures import signatures_of, skipped_counts


def _index_parts(index: list[str], band: int, part: int, ranges: int, so: StorageOptions) -> list[pa.Table]:
    """Band files of earlier runs (any key-range split), restricted to this key range, with
    their document ids moved below NEW (``index_ids``), so they sort
    first and are always the group representative."""
    tables = []
    for k, path in enumerate(index):
        fs, folder = filesystem(band_dir(path, band), so)
        for f in sorted(fs.glob(posixpath.join(folder, "group=*.parquet"))):
            with fs.open(f, "rb") as fh:
                pf = pq.ParquetFile(fh)
                # Row group r holds the keys with key % R == r: with the same R only this task's
                # row group is read; otherwise one row group at a time, filtered. Either way the
                # task holds its own range, never the earlier corpus.
                groups = [part] if pf.num_row_groups == ranges else range(pf.num_row_groups)
                for g in groups:
                    t = pf.read_row_group(g)
                    keys = t.column("key").to_numpy()
                    sel = keys % np.uint64(ranges) == part
                    tables.append(pa.table({"key": keys[sel], "doc": index_ids(k, t.column("doc").to_numpy()[sel])},
                                           schema=KEY_SCHEMA))
    return tables


def band_components(band: int, part: int, n_groups: int, ranges: int, work: str, cfg: DedupConfig,
                    so: StorageOptions = None, sizes: list[int] | None = None) -> dict[str, int]:
    """Phase 2 for one band and key range: groups of equal keys -> (doc, root = smallest doc of
    the group), as member -> root edges.

    With ``verify_threshold``, a member stays in its group only if its full signature agrees
    with the root's on at least that share of hashes (memory: the grouped documents only)."""
    verify_threshold, index, num_perm = cfg.verify_threshold, cfg.index, cfg.bands * cfg.rows
    cols = read_partition([group_path(work, band, g) for g in range(n_groups)], part, ranges, KEY_SCHEMA, so, sizes)
    extra = _index_parts(index, band, part, ranges, so)
    keys, docs = cols["key"], cols["doc"]
    if extra:
        keys = np.concatenate([keys, *(t.column("key").to_numpy() for t in extra)])
        docs = np.concatenate([docs, *(t.column("doc").to_numpy() for t in extra)])
    order = np.lexsort((docs, keys))
    keys, docs = keys[order], docs[order]
    del order
    if len(keys):
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        sizes_ = np.diff(np.append(starts, len(keys)))
        group_root = np.repeat(docs[starts], sizes_)
        in_group = np.repeat(sizes_ > 1, sizes_)
        docs_out, roots_out = docs[in_group], group_root[in_group]
    else:
        docs_out = roots_out = np.zeros(0, dtype=np.uint64)
    n_keys = len(keys)
    del keys, docs
    rejected = 0
    if verify_threshold is not None and len(docs_out):
        members = docs_out != roots_out
        uniq, inv = np.unique(np.concatenate([docs_out, roots_out]), return_inverse=True)
        sigs = signatures_of(uniq, work, index or [], num_perm, so)
        d_sig, r_sig = sigs[inv[: len(docs_out)]], sigs[inv[len(docs_out):]]
        agree = (d_sig == r_sig).mean(axis=1)
        ok = ~members | (agree >= verify_threshold)
        rejected = int((~ok).sum())
        docs_out, roots_out = docs_out[ok], roots_out[ok]
    # Only member -> root edges: a root's self-edge would turn a group whose members were all
    # rejected by verification into a one-document "cluster".
    member = docs_out != roots_out
    docs_out, roots_out = docs_out[member], roots_out[member]
    write_table_atomic(pa.table({"doc": docs_out, "root": roots_out}, schema=COMPONENT_SCHEMA),
                       component_path(work, band, part), so)
    return {"keys": int(n_keys), "grouped": int(len(docs_out)), "rejected_by_verification": rejected}


def band_unit(band: int, part: int, n_groups: int, ranges: int, work: str, cfg: DedupConfig, key: str,
              storage_options: StorageOptions = None, sizes: list[int] | None = None) -> dict[str, Any]:
    """Phase 2 for one band and key range."""
    def run() -> tuple[dict[str, Any], dict[str, Any]]:
        counts = band_components(band, part, n_groups, ranges, work, cfg, storage_options, sizes)
        return counts, {"counts": counts}

    return resumable(Marker(component_path(work, band, part), storage_options), key, run, skipped_counts)[0]


@dataclass(frozen=True)
class BandWork:
    """One mapped task of phase 2: :func:`band_unit`."""

    band: int
    part: int
    n_groups: int
    ranges: int
    work: str
    cfg: DedupConfig
    key: str
    storage_options: StorageOptions = None
    sizes: list[int] | None = None

    def __call__(self) -> dict[str, Any]:
        return band_unit(self.band, self.part, self.n_groups, self.ranges, self.work, self.cfg, self.key,
                         self.storage_options, self.sizes)

    def label(self) -> str:
        return f"band {self.band} range {self.part}"
