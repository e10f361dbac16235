"""MinHash near-deduplication in phases that each run as tasks over groups of shards or over
partitions, so a task's memory is bounded by a group or a partition, never by the corpus:

1. signatures (map over groups of consecutive shards, ``dedup.group_docs`` documents each):
   shingles -> MinHash -> one bucket key per band (+ an exact-text key); per band one file
   ``bands/band=BB/group=GGGGG.parquet`` with one row group per key range (``key % R``: a
   shuffle file, :func:`winnow.shardio.write_partitioned`), plus every shard's full signatures.
2. ``band_components`` (map over bands x key ranges): reads row group r of every group's file
   of its band; documents sharing a key form a group, whose smallest document id is its root
   (optionally verified against the full signatures). Written as member -> root edges,
   ``components/band=BB-range=RRRR.parquet``. R is ``dedup.partitions``, or with ``auto`` one
   range per ``dedup.partition_docs`` documents, so a band task never grows with the corpus.
3. connected components (:mod:`winnow.components`): the edges of every band joined into
   components by rounds of partition tasks (alternating large-star / small-star), the sizes
   and representatives assigned per partition, and ``clusters/part-SSSSS.parquet`` (row,
   root, cluster size) written per group of shards.
4. ``filter_shard`` (map over document shards): keep a document unless it is in a cluster and
   is not its root (the smallest id: the earliest document in input order); record the
   cluster size, optionally write the kept one several times (rehydration).

Document ids are ``NEW | shard << 32 | row`` (NEW = 2^62). Documents of an earlier run's
index (``dedup.index``) join the band groups with ids below NEW, so they are always the
representative: a new document that duplicates an already published one is removed, and
the index itself is never changed. Every unit of work writes atomically and leaves a
done-marker keyed on the whole dedup input (every input shard's key and the parameters), so
a rerun resumes at the unit that failed and a changed input starts the dedup work over.
"""

from __future__ import annotations

import functools
import json
import math
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from winnow.components import CLUSTERS_DIR, components_in_memory, connected_components
from winnow.config import output_settings, path_field
from winnow.document import Document
from winnow.minhash import WordHasher, band_keys, permutations, text_signatures
from winnow.report import bar_chart, section
from winnow.resume import (
    Marker,
    Mismatch,
    ShardRef,
    ShardResult,
    derive_shard,
    group_by_rows,
    marker_path,
    read_shard,
    redo_note,
    work_key,
)
from winnow.shardio import (
    StorageError,
    filesystem,
    join,
    path_stamps,
    read_partition,
    read_table,
    shard_name,
    storage_call,
    write_bytes_atomic,
    write_partitioned,
    write_table_atomic,
)
from winnow.stage import CorpusContext, CorpusResult, CorpusStage, StageConfig, StageEnv, StageError, register
from winnow.stats import StageStats

Score = Annotated[float, Field(ge=0.0, le=1.0)]
STAGE = "dedup"
DEDUPED_DIR = "deduped"
WORK_DIR = "dedup"


class DedupConfig(StageConfig):
    """Settings of the MinHash dedup stage (YAML section `dedup`)."""
    enabled: bool = Field(False, description="MinHash near-deduplication across all curated shards.")
    ngram: int = Field(5, ge=1, le=16, description="Word n-gram size of the shingles.")
    bands: int = Field(14, ge=1, description="LSH bands.")
    rows: int = Field(8, ge=1, description="Rows (hashes) per band; bands x rows permutations in all.")
    seed: int = Field(1, description="Permutation seed (datasketch's MinHash seed).")
    exact: bool = Field(True, description="Also group documents whose normalised text is identical.")
    verify_threshold: Score | None = Field(
        0.8, description="Keep a candidate pair (same bucket in some band) only if the full signatures "
                         "agree on at least this share of hashes (estimated Jaccard); null: trust the "
                         "buckets, as datatrove/FineWeb do. Removes the 0.6-0.8 pairs LSH lets through.")
    partitions: int | Literal["auto"] = Field(
        "auto", description="Key ranges per band: a band task holds 16 bytes per document of its range. "
                            "auto: one range per `partition_docs` documents of the corpus, so a band task's "
                            "memory stays the same however large the corpus.")
    partition_docs: int = Field(
        20_000_000, ge=1000, description="auto partitions: documents per key range of a band (16 bytes each, "
                                         "about 4x that while sorting).")
    group_docs: int = Field(
        2_000_000, ge=1, description="Signature tasks take consecutive shards of about this many documents and "
                                     "write one band-key file per band for them.")
    cc_part_edges: int = Field(
        10_000_000, ge=1000, description="Connected components run over partitions of about this many edges "
                                         "(about 56 bytes each in a task).")
    single_task_below: int = Field(
        200_000, ge=0, description="Corpora with fewer documents run signatures to clusters in one task "
                                   "(seconds of work, which the staged map over shards and bands would "
                                   "spend on scheduling); 0: always staged.")
    index: list[str] = path_field(
        default_factory=list, stamped=False,  # keyed by each index's own done-marker (settings())
        description="Dedup work folders of earlier runs (OUTPUT/dedup): documents near-duplicate to one "
                    "already published there are removed, and the earlier ones are never touched.")
    upsample: dict[int, int] = Field(
        default_factory=dict,
        description="FineWeb-2-style rehydration: {min_cluster_size: copies}; the kept document of a "
                    "cluster of size s is written `copies` times for the largest min_cluster_size <= s. "
                    "Empty: keep one copy, record the size only.")

    @field_validator("partitions")
    @classmethod
    def _ranges(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 65536:
            raise ValueError("partitions must be 1..65536 or auto")
        return v

    @field_validator("upsample")
    @classmethod
    def _positive(cls, v: dict[int, int]) -> dict[int, int]:
        if any(k < 1 or c < 1 for k, c in v.items()):
            raise ValueError("cluster sizes and copies must be >= 1")
        return v


BATCH = 20_000
KEY_SCHEMA = pa.schema([("key", pa.uint64()), ("doc", pa.uint64())])
COMPONENT_SCHEMA = pa.schema([("doc", pa.uint64()), ("root", pa.uint64())])
CLUSTER_SCHEMA = pa.schema([("row", pa.uint32()), ("root", pa.uint64()), ("size", pa.uint32())])


NEW = np.uint64(1 << 62)
LOW32 = np.uint64(0xFFFFFFFF)
PARAMS = "params.json"


def doc_ids(shard: int, rows: np.ndarray) -> np.ndarray:
    """Run-unique document ids that sort in input order (shard, row): the smallest id of a
    cluster is its earliest document."""
    return NEW | (np.uint64(shard) << np.uint64(32)) | rows.astype(np.uint64)


def shard_of(ids: np.ndarray) -> np.ndarray:
    # 24 bits of shard number (16M shards); above them: NEW, or the index number of an earlier run.
    """The shard an id belongs to."""
    return ((ids >> np.uint64(32)) & np.uint64(0xFFFFFF)).astype(np.int64)


def params(cfg: DedupConfig) -> dict[str, Any]:
    """What must match for two runs' band keys to be comparable."""
    return {"ngram": cfg.ngram, "bands": cfg.bands, "rows": cfg.rows, "seed": cfg.seed, "exact": cfg.exact,
            "signatures": cfg.verify_threshold is not None, "layout": "groups-v2",
            "shingle_hash": "winnow-xxh3-posmult-v1", "band_key": "winnow-mix64-v1"}


def check_index(cfg: DedupConfig, so: dict[str, Any] | None = None) -> None:
    """Earlier runs named in dedup.index must be dedup folders built with the same parameters, or
    their keys mean nothing here."""
    def read_params(path: str) -> bytes | None:
        fs, p = filesystem(join(path, PARAMS), so)
        return fs.cat_file(p) if fs.exists(p) else None

    for path in cfg.index:
        try:
            raw = storage_call(path, "read the dedup index", functools.partial(read_params, path))
        except StorageError as exc:
            raise StageError(f"dedup.index: {exc}") from None
        if raw is None:
            raise StageError(f"dedup.index: {path} is not a winnow dedup folder (no {PARAMS}); "
                             "point it at an earlier run's OUTPUT/dedup")
        try:
            theirs = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StageError(f"dedup.index: {path}/{PARAMS} is damaged (not JSON)") from None
        if theirs != params(cfg):
            raise StageError(f"dedup.index: {path} was built with {theirs}, this run uses {params(cfg)}; "
                             "band keys are only comparable with the same parameters")


def n_partitions(cfg: DedupConfig) -> int:
    """Band keys per document: the bands, plus the exact-text key."""
    return cfg.bands + (1 if cfg.exact else 0)


def sig_path(work: str, shard: int) -> str:
    """Where a shard's full signatures are (verification reads rows of them)."""
    return join(work, "signatures", f"part-{shard:05d}.u32")


def _write_signatures(sig: np.ndarray, path: str, so: dict[str, Any] | None) -> None:
    """Row r = signature of document r of the shard: random access by row, no index needed."""
    write_bytes_atomic(path, np.ascontiguousarray(sig, dtype="<u4").tobytes(), so)


def read_signature_rows(path: str, rows: np.ndarray, num_perm: int, so: dict[str, Any] | None) -> np.ndarray:
    """Signatures of the given rows of one shard (sorted rows; reads only what is needed)."""
    if "://" not in path:
        mm = np.memmap(path, dtype="<u4", mode="r").reshape(-1, num_perm)
        return np.asarray(mm[rows])
    fs, p = filesystem(path, so)
    width = 4 * num_perm
    starts = [int(r) * width for r in rows]
    blobs = fs.cat_ranges([p] * len(rows), starts, [s + width for s in starts])
    return np.frombuffer(b"".join(blobs), dtype="<u4").reshape(-1, num_perm)


def _signatures_of(ids: np.ndarray, work: str, index: list[str], num_perm: int,
                   so: dict[str, Any] | None) -> np.ndarray:
    """Full signatures of documents of this run (NEW ids) or of an index run (k << 56 | id)."""
    out = np.zeros((len(ids), num_perm), dtype=np.uint32)
    new = (ids & NEW) != 0
    sources = np.where(new, np.uint64(1 << 8), ids >> np.uint64(56))  # 256 = this run, else index k
    shards = shard_of(ids)
    rows = (ids & LOW32).astype(np.int64)
    for src in np.unique(sources):
        base = work if src == 256 else index[int(src)]
        for shard in np.unique(shards[sources == src]):
            sel = np.flatnonzero((sources == src) & (shards == shard))
            order = sel[np.argsort(rows[sel], kind="stable")]
            out[order] = read_signature_rows(sig_path(base, int(shard)), rows[order], num_perm, so)
    return out


def n_ranges(cfg: DedupConfig, n_docs: int) -> int:
    """Key ranges per band for a corpus of ``n_docs`` documents."""
    if cfg.partitions == "auto":
        return max(1, math.ceil(n_docs / cfg.partition_docs))
    return int(cfg.partitions)


def group_path(work: str, band: int, group: int) -> str:
    """The band keys of one group of shards (one row group per key range)."""
    return join(work, "bands", f"band={band:02d}", f"group={group:05d}.parquet")


def component_path(work: str, band: int, part: int) -> str:
    """Where the member->root edges of one band and key range are."""
    return join(work, "components", f"band={band:02d}-range={part:04d}.parquet")


def band_tasks(cfg: DedupConfig, ranges: int) -> list[tuple[int, int]]:
    """(band, key range) pairs: the units of phase 2."""
    return [(b, p) for b in range(n_partitions(cfg)) for p in range(ranges)]


def shard_signatures(docs: Iterable[Document], shard: int, work: str, cfg: DedupConfig,
                     so: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
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
                     cfg: DedupConfig, ranges: int, so: dict[str, Any] | None = None) -> dict[str, Any]:
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


def _index_parts(index: list[str], band: int, part: int, ranges: int, so: dict[str, Any] | None) -> list[pa.Table]:
    """Band files of earlier runs (any key-range split), restricted to this key range, with
    their document ids moved below NEW (index k gets ids k << 56 | old id), so they sort
    first and are always the group representative."""
    tables = []
    for k, path in enumerate(index):
        fs, folder = filesystem(join(path, "bands", f"band={band:02d}"), so)
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
                    old = t.column("doc").to_numpy()[sel] & np.uint64((1 << 56) - 1)
                    tables.append(pa.table({"key": keys[sel], "doc": (np.uint64(k) << np.uint64(56)) | old},
                                           schema=KEY_SCHEMA))
    return tables


def band_components(band: int, part: int, n_groups: int, ranges: int, work: str, cfg: DedupConfig,
                    so: dict[str, Any] | None = None, sizes: list[int] | None = None) -> dict[str, int]:
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
        sigs = _signatures_of(uniq, work, index or [], num_perm, so)
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


def filter_shard(docs: Iterable[Document], shard: int, work: str, cfg: DedupConfig, stats: StageStats,
                 so: dict[str, Any] | None = None) -> Iterator[Document]:
    """Stage 4 for one shard: drop non-representative cluster members, record cluster sizes."""
    table = read_table(join(work, CLUSTERS_DIR, f"part-{shard:05d}.parquet"), so)
    members = dict(zip(table.column("row").to_pylist(),
                       zip(table.column("root").to_pylist(), table.column("size").to_pylist())))
    thresholds = sorted(cfg.upsample.items())
    me = int(NEW) | shard << 32
    for row, doc in enumerate(docs):
        n = doc.n_bytes
        stats.take_in(n)
        root, size = members.get(row, (me | row, 1))
        if root != (me | row):
            stats.drop("near_duplicate", n)
            continue
        doc.annotate(STAGE, "cluster_size", size)
        stats.counters[f"cluster_size:{_size_bucket(size)}"] += 1
        copies = 1
        for min_size, c in thresholds:
            if size >= min_size:
                copies = c
        for k in range(copies):
            stats.keep(n)
            yield doc if k == 0 else Document(id=f"{doc.id}#copy{k}", text=doc.text, url=doc.url,
                                               crawl_date=doc.crawl_date, source_file=doc.source_file,
                                               source_offset=doc.source_offset, content_type=doc.content_type,
                                               annotations=dict(doc.annotations))


def _size_bucket(size: int) -> str:
    for bound in (1, 2, 5, 10, 100, 1000):
        if size <= bound:
            return f"<={bound}"
    return ">1000"


def dedup_in_process(shards: list[list[Document]], work: str, cfg: DedupConfig,
                     so: dict[str, Any] | None = None) -> tuple[list[list[Document]], dict[str, Any], StageStats]:
    """Every phase in this process, for small inputs, tests and benchmarks (the flow runs the
    same functions as mapped Prefect tasks): one signature group per shard."""
    check_index(cfg, so)
    ranges = n_ranges(cfg, sum(len(s) for s in shards))
    for k, docs in enumerate(shards):
        signatures_group([(k, docs)], k, work, cfg, ranges, so)
    units = band_tasks(cfg, ranges)
    edges = sum(band_components(b, p, len(shards), ranges, work, cfg, so)["grouped"] for b, p in units)
    summary = connected_components([component_path(work, b, p) for b, p in units], work,
                                   cc_parts(cfg, edges), len(shards), storage_options=so,
                                   clusters_dir=join(work, CLUSTERS_DIR))
    stats = StageStats()
    kept = [list(filter_shard(docs, k, work, cfg, stats, so)) for k, docs in enumerate(shards)]
    return kept, summary, stats


def cc_parts(cfg: DedupConfig, edges: int) -> int:
    """Partitions of the connected-components rounds for ``edges`` member -> root edges."""
    return max(1, math.ceil(edges / cfg.cc_part_edges))


# ----------------------------------------------------------------------------- units of work
# Each function below is what one mapped task runs (plain functions: tests call them directly).
# ``key`` is the dedup work key: every unit's done-marker records it, so a unit is redone when
# anything upstream changed, and the flow wipes the work folder when the key changes.


def signatures_unit(groups: list[dict[str, Any]], work: str, cfg: DedupConfig, ranges: int, key: str,
                    storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Phase 1 for a batch of shard groups (each keeps its own files and marker)."""
    out: list[dict[str, Any]] = []
    for g in groups:
        marker = Marker(join(work, "bands", f"group={g['group']:05d}"), storage_options)
        done = marker.check(key, require_output=False)[0]
        if done is not None:
            out.append({**done["counts"], "skipped": True})
            continue
        shard_docs = ((k, read_shard(ref, storage_options))
                      for ref, k in zip(g["shards"], g["indices"], strict=True))
        counts = signatures_group(shard_docs, g["group"], work, cfg, ranges, storage_options)
        marker.write(key, {"counts": counts})
        out.append(counts)
    return out


def band_unit(band: int, part: int, n_groups: int, ranges: int, work: str, cfg: DedupConfig, key: str,
              storage_options: dict[str, Any] | None = None, sizes: list[int] | None = None) -> dict[str, Any]:
    """Phase 2 for one band and key range."""
    marker = Marker(component_path(work, band, part), storage_options)
    done = marker.check(key)[0]
    if done is not None:
        return {**done["counts"], "skipped": True}
    counts = band_components(band, part, n_groups, ranges, work, cfg, storage_options, sizes)
    marker.write(key, {"counts": counts})
    return counts


def filter_unit(shards: list[ShardRef], indices: list[int], work: str, outs: list[str], cfg: DedupConfig,
                key: str, storage_options: dict[str, Any] | None = None,
                rows_per_group: int = 2000) -> list[ShardResult]:
    """Phase 4 for a batch of shards: each writes its deduplicated shard and marker."""
    # The work key covers the dedup settings and the index stamps; no listing per task here.
    settings = {**output_settings(cfg), "work_key": key}

    def filtered(k: int) -> Callable[[Iterable[Document], StageStats], Iterator[Document]]:
        return lambda docs, stats: filter_shard(docs, k, work, cfg, stats, storage_options)

    return [derive_shard(ref, out, STAGE, settings, filtered(k), storage_options, rows_per_group)
            for ref, k, out in zip(shards, indices, outs, strict=True)]


def _signature_groups(inputs: list[ShardRef], cfg: DedupConfig) -> list[dict[str, Any]]:
    return [{"group": g, "shards": [inputs[k] for k in idx], "indices": idx}
            for g, idx in enumerate(group_by_rows(inputs, cfg.group_docs))]


def all_in_one_unit(shards: list[ShardRef], work: str, cfg: DedupConfig, key: str,
                    storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Phases 1-3 in one task, for small corpora: the same functions, files and markers."""
    ranges = n_ranges(cfg, sum(r.rows for r in shards))
    groups = _signature_groups(shards, cfg)
    results = signatures_unit(groups, work, cfg, ranges, key, storage_options)
    units = band_tasks(cfg, ranges)
    for b, p in units:
        band_unit(b, p, len(groups), ranges, work, cfg, key, storage_options, [r["sizes"][b] for r in results])
    # One task holds the whole (small) graph anyway: scipy in memory, the reference the
    # distributed rounds are tested equal to.
    return components_in_memory([component_path(work, b, p) for b, p in units], len(shards),
                                join(work, CLUSTERS_DIR), storage_options)


def _reset_work(work: str, key: str, settings: dict[str, Any], storage_options: dict[str, Any] | None
                ) -> Mismatch | None:
    """Start the dedup work over when its input or parameters changed (the key is the digest
    of every input shard's key and the dedup settings); why, when an earlier run's is redone."""
    marker = Marker(join(work, "inputs"), storage_options)
    done, mismatch = marker.check(key, {STAGE: settings}, require_output=False)
    if done is not None:
        return None
    fs, path = filesystem(work, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    marker.write(key, {}, {STAGE: settings})
    return mismatch


@register
class DedupStage(CorpusStage[DedupConfig]):
    """MinHash near-dedup over every shard of the run."""

    name = STAGE
    config_model = DedupConfig
    order = 100
    output_dir = DEDUPED_DIR
    summary = "MinHash near-dedup across all shards: signatures -> band buckets -> connected components -> filter."

    @classmethod
    def check(cls, section: DedupConfig, env: StageEnv) -> None:
        check_index(section, env.storage_options)

    @classmethod
    def settings(cls, section: DedupConfig, env: StageEnv | None = None) -> dict[str, Any]:
        out = super().settings(section, env)
        if section.index:
            # An index rebuilt at the same path changes its own work marker: this run is redone.
            so = env.storage_options if env is not None else None
            try:
                out["index_markers"] = path_stamps([marker_path(join(p, "inputs")) for p in section.index], so)
            except (OSError, ValueError):
                out["index_markers"] = "unreadable"  # check_index says why, before work
        return out

    @classmethod
    def run(cls, section: DedupConfig, ctx: CorpusContext, inputs: list[ShardRef]) -> CorpusResult:
        so = ctx.storage_options
        work = join(ctx.output, WORK_DIR)
        n = len(inputs)
        settings = cls.settings(section, StageEnv(so or {}, ctx.output))
        key = work_key([r.key for r in inputs], settings)
        redone = _reset_work(work, key, settings, so)
        if redone is not None:
            ctx.log(redo_note([redone], "output(s)", STAGE) or "")
        deduped = [join(ctx.output, DEDUPED_DIR, shard_name(k)) for k in range(n)]
        n_docs = sum(r.rows for r in inputs)
        if n_docs < section.single_task_below:
            summary = ctx.mapper.run_one(all_in_one_unit, {"shards": inputs, "work": work, "cfg": section,
                                                           "key": key, "storage_options": so},
                                         name="dedup-clusters-all")
        else:
            ranges = n_ranges(section, n_docs)
            groups = _signature_groups(inputs, section)
            batches = ctx.mapper.batches(len(groups), tasks_per_worker=4)
            results = [r for part in ctx.mapper.map(
                signatures_unit, [{"groups": [groups[g] for g in b], "work": work, "cfg": section, "ranges": ranges,
                                   "key": key, "storage_options": so} for b in batches],
                name="dedup-signatures", label=lambda item: f"groups {item['groups'][0]['group']}-"
                                                            f"{item['groups'][-1]['group']}") for r in part]
            units = band_tasks(section, ranges)
            bands = ctx.mapper.map(band_unit, [
                {"band": b, "part": p, "n_groups": len(groups), "ranges": ranges, "work": work, "cfg": section,
                 "key": key, "storage_options": so, "sizes": [r["sizes"][b] for r in results]} for b, p in units],
                name="dedup-band", label=lambda item: f"band {item['band']} range {item['part']}")
            edges = sum(r["grouped"] for r in bands)

            def run_round(fn: Callable[..., Any], items: list[dict[str, Any]]) -> list[Any]:
                return ctx.mapper.map(fn, items, name=f"dedup-{fn.__name__.removesuffix('_task').replace('_', '-')}")

            summary = connected_components([component_path(work, b, p) for b, p in units], work,
                                           cc_parts(section, edges), n, run_round, storage_options=so,
                                           clusters_dir=join(work, CLUSTERS_DIR))
        batches = ctx.mapper.batches(n, tasks_per_worker=4)
        results_f = [r for part in ctx.mapper.map(
            filter_unit, [{"shards": [inputs[k] for k in b], "indices": b, "work": work,
                           "outs": [deduped[k] for k in b], "cfg": section, "key": key, "storage_options": so,
                           "rows_per_group": ctx.rows_per_row_group} for b in batches],
            name="dedup-filter", label=_batch_label) for r in part]
        stats = StageStats()
        for r in results_f:
            stats.merge(StageStats.from_dict(r.stats[STAGE]))
        summary = {k: v for k, v in summary.items() if k in ("clusters", "documents_in_clusters", "removed",
                                                             "cluster_size_histogram", "rounds")}
        ctx.log(f"dedup: {summary['clusters']:,} clusters, {summary['removed']:,} near-duplicates removed")
        refs = [r.ref for r in results_f if r.ref is not None]
        return CorpusResult(refs, {STAGE: stats}, summary, summary_key="dedup",
                            final_output=join(ctx.output, DEDUPED_DIR))

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        info = summary.get("dedup") or {}
        if stats is None and not info:
            return None
        sizes = sorted((int(k), v) for k, v in (info.get("cluster_size_histogram") or {}).items())
        return section("dedup", "Near-duplicate clusters",
                       f'<p>{info.get("clusters", 0):,} clusters holding {info.get("documents_in_clusters", 0):,} '
                       f'documents; {info.get("removed", 0):,} removed.</p>'
                       + bar_chart([(f"size {k}", v) for k, v in sizes], "clusters per cluster size",
                                   chart_id="dedup-chart"))




def _batch_label(item: Mapping[str, Any]) -> str:
    idx = item["indices"]
    return f"{idx[0]}-{idx[-1]}"
