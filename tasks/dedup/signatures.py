"""Phase 1, signatures: shingles -> MinHash -> one bucket key per band (+ an exact-text key)
for a group of consecutive shards; per band one shuffle file with a row group per key range,
plus every shard's full signatures (verification reads rows of them)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from winnow.document import Document
from winnow.minhash import WordHasher, band_keys, permutations, text_signatures
from winnow.resume import Marker, ShardRef, group_by_rows, read_shard, resumable
from winnow.storage import StorageOptions, filesystem, join, write_bytes_atomic
from winnow.tasks.dedup.config import DedupConfig, n_partitions, params
from winnow.tasks.dedup.layout import (
    KEY_SCHEMA,
    LOW32,
    PARAMS,
    THIS_RUN,
    doc_ids,
    group_output,
    group_path,
    shard_of,
    sig_path,
    source_of,
)
from winnow.tasks.dedup.shuffle import write_partitioned

BATCH = 20_000


def _write_signatures(sig: np.ndarray, path: str, so: StorageOptions) -> None:
    """Row r = signature of document r of the shard: random access by row, no index needed."""
    write_bytes_atomic(path, np.ascontiguousarray(sig, dtype="<u4").tobytes(), so)


def read_signature_rows(path: str, rows: np.ndarray, num_perm: int, so: StorageOptions) -> np.ndarray:
    """Signatures of the given rows of one shard (sorted rows; reads only what is needed)."""
    if "://" not in path:
        mm = np.memmap(path, dtype="<u4", mode="r").reshape(-1, num_perm)
        return np.asarray(mm[rows])
    fs, p = filesystem(path, so)
    width = 4 * num_perm
    starts = [int(r) * width for r in rows]
    blobs = fs.cat_ranges([p] * len(rows), starts, [s + width for s in starts])
    return np.frombuffer(b"".join(blobs), dtype="<u4").reshape(-1, num_perm)


def signatures_of(ids: np.ndarray, work: str, index: list[str], num_perm: int,
                   so: StorageOptions) -> np.ndarray:
    """Full signatures of documents of this run (NEW ids) or of an index run (``index_ids``)."""
    out = np.zeros((len(ids), num_perm), dtype=np.uint32)
    sources = source_of(ids)
    shards = shard_of(ids)
    rows = (ids & LOW32).astype(np.int64)
    for src in np.unique(sources):
        base = work if src == THIS_RUN else index[int(src)]
        for shard in np.unique(shards[sources == src]):
            sel = np.flatnonzero((sources == src) & (shards == shard))
            order = sel[np.argsort(rows[sel], kind="stable")]
            out[order] = read_signature_rows(sig_path(base, int(shard)), rows[order], num_perm, so)
    return out


def shard_signatures(docs: Iterable[Document], shard: int, work: str, cfg: DedupConfig,
                     so: StorageOptions = None) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """One shard's band keys (documents x bands) and ids, its full signatures written to
    ``sig_path`` when verifying; documents without words are never duplicates (left out)."""
    a, b = permutations(cfg.bands * cfg.rows, cfg.seed)
    hasher = WordHasher()
    keys_parts: list[np.ndarray] = []
    rows_parts: list[np.ndarray] = []
    sig_parts: list[np.ndarray] = []
    n_docs = n_empty = 0
    texts: list[str] = []

    def flush() -> None:
        nonlocal n_empty
        sig, has, exact = text_signatures(texts, cfg.ngram, hasher, a, b)
        if cfg.verify_threshold is not None:
            sig_parts.append(sig)
        keys = band_keys(sig, cfg.bands, cfg.rows)
        if cfg.exact:
            keys = np.concatenate([keys, exact[:, None]], axis=1)
        rows = np.arange(n_docs - len(texts), n_docs, dtype=np.uint64)
        keys_parts.append(keys[has])
        rows_parts.append(rows[has])
        n_empty += int((~has).sum())
        texts.clear()

    for doc in docs:
        n_docs += 1
        texts.append(doc.text)
        if len(texts) >= BATCH:
            flush()
    if texts:
        flush()
    keys = np.concatenate(keys_parts) if keys_parts else np.zeros((0, n_partitions(cfg)), dtype=np.uint64)
    ids = doc_ids(shard, np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.uint64))
    if cfg.verify_threshold is not None:
        sigs = np.concatenate(sig_parts) if sig_parts else np.zeros((0, len(a)), dtype=np.uint32)
        _write_signatures(sigs, sig_path(work, shard), so)
    return keys, ids, {"documents": n_docs, "no_words": n_empty}


def signatures_group(shard_docs: Iterable[tuple[int, Iterable[Document]]], group: int, work: str,
                     cfg: DedupConfig, ranges: int, so: StorageOptions = None) -> dict[str, Any]:
    """Phase 1 for one group of shards ((shard index, documents) pairs): its band-key files (one
    per band, a row group per key range). Returns counts and the files' sizes (band tasks then
    open them without a HEAD)."""
    keys_parts, id_parts = [], []
    counts = {"documents": 0, "no_words": 0}
    for k, docs in shard_docs:
        keys, ids, c = shard_signatures(docs, k, work, cfg, so)
        keys_parts.append(keys)
        id_parts.append(ids)
        counts = {name: counts[name] + c[name] for name in counts}
    keys = np.concatenate(keys_parts) if keys_parts else np.zeros((0, n_partitions(cfg)), dtype=np.uint64)
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.uint64)
    sizes = []
    for band in range(n_partitions(cfg)):
        band_keys = keys[:, band]
        sizes.append(write_partitioned(group_path(work, band, group), KEY_SCHEMA,
                                       [({"key": band_keys, "doc": ids},
                                         (band_keys % np.uint64(ranges)).astype(np.int64))],
                                       ranges, so))
    write_bytes_atomic(join(work, PARAMS), json.dumps(params(cfg)).encode(), so)
    return {**counts, "sizes": sizes}


@dataclass(frozen=True)
class SignatureGroup:
    """Consecutive shards whose band keys go to one file per band."""

    group: int
    shards: list[ShardRef]
    indices: list[int]  # the shards' numbers in the run


def signature_groups(inputs: list[ShardRef], cfg: DedupConfig) -> list[SignatureGroup]:
    """The groups of phase 1: consecutive shards of about ``dedup.group_docs`` documents."""
    return [SignatureGroup(g, [inputs[k] for k in idx], idx)
            for g, idx in enumerate(group_by_rows(inputs, cfg.group_docs))]


def signatures_unit(groups: list[SignatureGroup], work: str, cfg: DedupConfig, ranges: int, key: str,
                    storage_options: StorageOptions = None) -> list[dict[str, Any]]:
    """Phase 1 for a batch of shard groups (each keeps its own files and marker)."""
    out: list[dict[str, Any]] = []
    for g in groups:
        def run(g: SignatureGroup = g) -> tuple[dict[str, Any], dict[str, Any]]:
            shard_docs = ((k, read_shard(ref, storage_options)) for ref, k in zip(g.shards, g.indices, strict=True))
            counts = signatures_group(shard_docs, g.group, work, cfg, ranges, storage_options)
            return counts, {"counts": counts}

        out.append(resumable(Marker(group_output(work, g.group), storage_options), key, run, skipped_counts,
                             require_output=False)[0])
    return out


def skipped_counts(done: dict[str, Any]) -> dict[str, Any]:
    """The counts a finished unit recorded, marked as skipped."""
    return {**done["counts"], "skipped": True}


@dataclass(frozen=True)
class SignaturesWork:
    """One mapped task of phase 1: :func:`signatures_unit` over a batch of groups."""

    groups: list[SignatureGroup]
    work: str
    cfg: DedupConfig
    ranges: int
    key: str
    storage_options: StorageOptions = None

    def __call__(self) -> list[dict[str, Any]]:
        return signatures_unit(self.groups, self.work, self.cfg, self.ranges, self.key, self.storage_options)

    def label(self) -> str:
        return f"groups {self.groups[0].group}-{self.groups[-1].group}"
