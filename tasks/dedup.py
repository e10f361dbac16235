"""MinHash near-deduplication in phases that each run per shard or per band partition, so
memory is bounded by a shard or a partition, never by the corpus:

1. ``signatures_shard`` (map over document shards): shingles -> MinHash -> one bucket key per
   band (+ an exact-text key), written as ``bands/band=BB/range=RRRR/part-SSSSS.parquet``
   sorted by key (``dedup.partitions`` key ranges per band), plus the full signatures.
2. ``band_components`` (map over bands x key ranges): documents sharing a key in a band form
   a group; the group's smallest document id is its root (optionally verified against the
   full signatures). Written as ``components/band=BB-range=RRRR.parquet``.
3. components (see ``_components_phase``): the partial components of all bands are joined
   into connected components; the result is split by shard: ``clusters/part-SSSSS.parquet``
   (row, root, cluster size).
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

import json
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from winnow.config import path_field
from winnow.document import Document
from winnow.minhash import WordHasher, band_keys, permutations, text_signatures
from winnow.report import bar_chart, section
from winnow.resume import Marker, ShardRef, ShardResult, derive_shard, work_key
from winnow.shardio import (
    filesystem,
    join,
    read_documents,
    read_table,
    shard_name,
    write_bytes_atomic,
    write_table_atomic,
)
from winnow.stage import CorpusContext, CorpusResult, CorpusStage, StageConfig, StageEnv, StageError, register
from winnow.stats import StageStats

Score = Annotated[float, Field(ge=0.0, le=1.0)]
STAGE = "dedup"
DEDUPED_DIR = "deduped"
WORK_DIR = "dedup"


class DedupConfig(StageConfig):
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
    partitions: int = Field(
        1, ge=1, le=4096,
        description="Key ranges per band. A band task holds 16 bytes per document of the whole corpus "
                    "divided by this: raise it for corpora past a worker's memory (1B docs, 64 -> 250 MB).")
    single_task_below: int = Field(
        200_000, ge=0, description="Corpora with fewer documents run signatures to clusters in one task "
                                   "(seconds of work, which the staged map over shards and bands would "
                                   "spend on scheduling); 0: always staged.")
    index: list[str] = path_field(
        default_factory=list,
        description="Dedup work folders of earlier runs (OUTPUT/dedup): documents near-duplicate to one "
                    "already published there are removed, and the earlier ones are never touched.")
    upsample: dict[int, int] = Field(
        default_factory=dict,
        description="FineWeb-2-style rehydration: {min_cluster_size: copies}; the kept document of a "
                    "cluster of size s is written `copies` times for the largest min_cluster_size <= s. "
                    "Empty: keep one copy, record the size only.")

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


BATCH = 20_000
KEY_SCHEMA = pa.schema([("key", pa.uint64()), ("doc", pa.uint64())])
COMPONENT_SCHEMA = pa.schema([("doc", pa.uint64()), ("root", pa.uint64())])
CLUSTER_SCHEMA = pa.schema([("row", pa.uint32()), ("root", pa.uint64()), ("size", pa.uint32())])


NEW = np.uint64(1 << 62)
LOW32 = np.uint64(0xFFFFFFFF)
PARAMS = "params.json"


def doc_ids(shard: int, rows: np.ndarray) -> np.ndarray:
    return NEW | (np.uint64(shard) << np.uint64(32)) | rows.astype(np.uint64)


def shard_of(ids: np.ndarray) -> np.ndarray:
    # 24 bits of shard number (16M shards); above them: NEW, or the index number of an earlier run.
    return ((ids >> np.uint64(32)) & np.uint64(0xFFFFFF)).astype(np.int64)


def params(cfg: DedupConfig) -> dict[str, Any]:
    """What must match for two runs' band keys to be comparable."""
    return {"ngram": cfg.ngram, "bands": cfg.bands, "rows": cfg.rows, "seed": cfg.seed, "exact": cfg.exact,
            "signatures": cfg.verify_threshold is not None,
            "shingle_hash": "winnow-xxh3-posmult-v1", "band_key": "winnow-mix64-v1"}


def check_index(cfg: DedupConfig, so: dict[str, Any] | None = None) -> None:
    for path in cfg.index:
        fs, p = filesystem(join(path, PARAMS), so)
        if not fs.exists(p):
            raise StageError(f"dedup.index: {path} is not a winnow dedup folder (no {PARAMS}); "
                             "point it at an earlier run's OUTPUT/dedup")
        with fs.open(p, "rb") as fh:
            theirs = json.loads(fh.read())
        if theirs != params(cfg):
            raise StageError(f"dedup.index: {path} was built with {theirs}, this run uses {params(cfg)}; "
                             "band keys are only comparable with the same parameters")


def n_partitions(cfg: DedupConfig) -> int:
    return cfg.bands + (1 if cfg.exact else 0)


def _write_table(table: pa.Table, path: str, so: dict[str, Any] | None) -> None:
    write_table_atomic(table, path, so)


def _read_table(path: str, so: dict[str, Any] | None) -> pa.Table:
    return read_table(path, so)


def sig_path(work: str, shard: int) -> str:
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


def band_path(work: str, band: int, part: int, shard: int) -> str:
    return join(work, "bands", f"band={band:02d}", f"range={part:04d}", f"part-{shard:05d}.parquet")


def component_path(work: str, band: int, part: int) -> str:
    return join(work, "components", f"band={band:02d}-range={part:04d}.parquet")


def band_tasks(cfg: DedupConfig) -> list[tuple[int, int]]:
    """(band, key range) pairs: the units of stage 2."""
    return [(b, p) for b in range(n_partitions(cfg)) for p in range(cfg.partitions)]


def signatures_shard(docs: Iterable[Document], shard: int, work: str, cfg: DedupConfig,
                     so: dict[str, Any] | None = None) -> dict[str, int]:
    """Stage 1 for one shard. Returns counts (documents, without shingles)."""
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
        keys_parts.append(keys[has])  # documents without words are never duplicates
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
    parts = cfg.partitions
    for band in range(n_partitions(cfg)):
        order = np.lexsort((ids, keys[:, band]))
        k, d = keys[order, band], ids[order]
        key_range = k % np.uint64(parts)
        for part in range(parts):
            sel = key_range == part
            _write_table(pa.table({"key": k[sel], "doc": d[sel]}, schema=KEY_SCHEMA),
                         band_path(work, band, part, shard), so)
    write_bytes_atomic(join(work, PARAMS), json.dumps(params(cfg)).encode(), so)
    return {"documents": n_docs, "no_words": n_empty}


def _index_parts(index: list[str], band: int, part: int, parts: int, so: dict[str, Any] | None) -> list[pa.Table]:
    """Band files of earlier runs (any key-range split), restricted to this key range, with
    their document ids moved below NEW (index k gets ids k << 56 | old id), so they sort
    first and are always the group representative."""
    tables = []
    for k, path in enumerate(index):
        fs, folder = filesystem(join(path, "bands", f"band={band:02d}"), so)
        for f in sorted(fs.glob(posixpath.join(folder, "*", "part-*.parquet"))):
            with fs.open(f, "rb") as fh:
                t = pq.read_table(fh)
            keys = t.column("key").to_numpy()
            sel = keys % np.uint64(parts) == part
            old = t.column("doc").to_numpy()[sel] & np.uint64((1 << 56) - 1)
            tables.append(pa.table({"key": keys[sel], "doc": (np.uint64(k) << np.uint64(56)) | old},
                                   schema=KEY_SCHEMA))
    return tables


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


def band_components(band: int, part: int, n_shards: int, work: str, cfg: DedupConfig,
                    so: dict[str, Any] | None = None) -> dict[str, int]:
    """Stage 2 for one band: groups of equal keys -> (doc, root = smallest doc of the group).

    With ``verify_threshold``, a member stays in its group only if its full signature agrees
    with the root's on at least that share of hashes (memory: the grouped documents only)."""
    verify_threshold, index, num_perm = cfg.verify_threshold, cfg.index, cfg.bands * cfg.rows
    parts = [_read_table(band_path(work, band, part, s), so) for s in range(n_shards)]
    parts += _index_parts(index, band, part, cfg.partitions, so)
    table = pa.concat_tables(parts) if parts else pa.table({"key": [], "doc": []}, schema=KEY_SCHEMA)
    keys = table.column("key").to_numpy()
    docs = table.column("doc").to_numpy()
    order = np.lexsort((docs, keys))
    keys, docs = keys[order], docs[order]
    if len(keys):
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        sizes = np.diff(np.append(starts, len(keys)))
        group_root = np.repeat(docs[starts], sizes)
        in_group = np.repeat(sizes > 1, sizes)
        docs_out, roots_out = docs[in_group], group_root[in_group]
    else:
        docs_out = roots_out = np.zeros(0, dtype=np.uint64)
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
    _write_table(pa.table({"doc": docs_out, "root": roots_out}, schema=COMPONENT_SCHEMA),
                 component_path(work, band, part), so)
    return {"keys": int(len(keys)), "grouped": int(len(docs_out)), "rejected_by_verification": rejected}


def _connected(docs: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the edges doc-root; returns (node, component min node)."""
    nodes, inverse = np.unique(np.concatenate([docs, roots]), return_inverse=True)
    if len(nodes) == 0:
        return nodes, nodes
    u, v = inverse[: len(docs)], inverse[len(docs):]
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    # Representative = smallest document id of the component (nodes are sorted: first index).
    comp_min = np.full(labels.max() + 1, len(nodes), dtype=np.int64)
    np.minimum.at(comp_min, labels, np.arange(len(nodes)))
    return nodes, nodes[comp_min[labels]]


def merge_components(paths: list[str], work: str, so: dict[str, Any] | None = None,
                     merge_round: Callable[[list[list[str]], list[str]], None] | None = None) -> str:
    """Stage 3: pairwise merge partial components, round by round, until one is left; returns
    the final file.

    Each merge holds only the documents that have a duplicate in one of its two inputs.
    ``merge_round(pairs, outs)`` runs the merges of one round (in the flow: mapped tasks, all
    of a round in parallel); default: one after the other in this process.
    """
    def in_process(pairs: list[list[str]], outs: list[str]) -> None:
        for pair, out in zip(pairs, outs):
            merge_pair(pair, out, so)

    merge_round = merge_round or in_process
    level, round_no = list(paths), 0
    while len(level) > 1:
        pairs = [level[k : k + 2] for k in range(0, len(level), 2)]
        outs = [join(work, "merged", f"round={round_no:02d}", f"part-{k:03d}.parquet") for k in range(len(pairs))]
        merge_round(pairs, outs)
        level, round_no = outs, round_no + 1
    return level[0]


def merge_pair(pair: list[str], out: str, so: dict[str, Any] | None = None) -> None:
    tables = [_read_table(p, so) for p in pair]
    table = pa.concat_tables(tables)
    nodes, roots = _connected(table.column("doc").to_numpy(), table.column("root").to_numpy())
    _write_table(pa.table({"doc": nodes, "root": roots}, schema=COMPONENT_SCHEMA), out, so)


def split_clusters(final: str, n_shards: int, work: str, so: dict[str, Any] | None = None) -> dict[str, Any]:
    """Final components -> per-shard files of (row, root, cluster size); size histogram."""
    table = _read_table(final, so)
    docs, roots = table.column("doc").to_numpy(), table.column("root").to_numpy()
    _, inverse, counts = np.unique(roots, return_inverse=True, return_counts=True)
    sizes = counts[inverse].astype(np.uint32)
    new = (docs & NEW) != 0  # documents of earlier runs (index) are not in this run's shards
    shards = shard_of(docs)
    for s in range(n_shards):
        sel = new & (shards == s)
        _write_table(pa.table({"row": (docs[sel] & LOW32).astype(np.uint32), "root": roots[sel],
                               "size": sizes[sel]}, schema=CLUSTER_SCHEMA),
                     join(work, "clusters", f"part-{s:05d}.parquet"), so)
    hist = {int(k): int(v) for k, v in zip(*np.unique(counts, return_counts=True))}
    new_roots = int(((np.unique(roots) & NEW) != 0).sum())
    return {"clusters": int(len(counts)), "documents_in_clusters": int(new.sum()),
            "removed": int(new.sum()) - new_roots, "cluster_size_histogram": hist}


def filter_shard(docs: Iterable[Document], shard: int, work: str, cfg: DedupConfig, stats: StageStats,
                 so: dict[str, Any] | None = None) -> Iterator[Document]:
    """Stage 4 for one shard: drop non-representative cluster members, record cluster sizes."""
    table = _read_table(join(work, "clusters", f"part-{shard:05d}.parquet"), so)
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
    """All four stages in this process, for small inputs, tests and benchmarks (the flow runs
    the same functions as mapped Prefect tasks)."""
    for k, docs in enumerate(shards):
        signatures_shard(docs, k, work, cfg, so)
    check_index(cfg, so)
    paths = []
    for band, part in band_tasks(cfg):
        band_components(band, part, len(shards), work, cfg, so)
        paths.append(component_path(work, band, part))
    final = merge_components(paths, work, so)
    summary = split_clusters(final, len(shards), work, so)
    stats = StageStats()
    kept = [list(filter_shard(docs, k, work, cfg, stats, so)) for k, docs in enumerate(shards)]
    return kept, summary, stats


# ----------------------------------------------------------------------------- units of work
# Each function below is what one mapped task runs (plain functions: tests call them directly).
# ``key`` is the dedup work key: every unit's done-marker records it, so a unit is redone when
# anything upstream changed, and the flow wipes the work folder when the key changes.


def signatures_unit(shards: list[ShardRef], indices: list[int], work: str, cfg: DedupConfig, key: str,
                    storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Phase 1 for a batch of shards (milliseconds each: batched so scheduling does not dominate)."""
    out: list[dict[str, Any]] = []
    for ref, k in zip(shards, indices, strict=True):
        marker = Marker(sig_marker_output(work, k), storage_options)
        if marker.check(key, require_output=False)[0] is not None:
            out.append({"skipped": True})
            continue
        counts = signatures_shard(read_documents(ref.path, StageStats(), storage_options), k, work, cfg,
                                  storage_options)
        marker.write(key, counts)
        out.append(counts)
    return out


def sig_marker_output(work: str, shard: int) -> str:
    return join(work, "signatures", shard_name(shard))


def band_unit(band: int, part: int, n_shards: int, work: str, cfg: DedupConfig, key: str,
              storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Phase 2 for one band and key range."""
    marker = Marker(component_path(work, band, part), storage_options)
    done = marker.check(key)[0]
    if done is not None:
        return {"skipped": True}
    out = band_components(band, part, n_shards, work, cfg, storage_options)
    marker.write(key, out)
    return out


def merge_unit(pair: list[str], out: str, key: str, storage_options: dict[str, Any] | None = None) -> str:
    """Phase 3: one pairwise merge of partial components."""
    marker = Marker(out, storage_options)
    if marker.check(key)[0] is None:
        merge_pair(pair, out, storage_options)
        marker.write(key, {"inputs": pair})
    return out


def clusters_unit(final: str, n_shards: int, work: str, key: str,
                  storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Phase 3b: the final components split by shard."""
    marker = Marker(join(work, "clusters"), storage_options, path=join(work, "_done", "clusters.json"))
    done = marker.check(key, require_output=False)[0]
    if done is not None:
        summary = dict(done["summary"])
        summary["cluster_size_histogram"] = {int(k): v for k, v in summary["cluster_size_histogram"].items()}
        return summary
    summary = split_clusters(final, n_shards, work, storage_options)
    marker.write(key, {"summary": summary})
    return summary


def filter_unit(shards: list[ShardRef], indices: list[int], work: str, outs: list[str], cfg: DedupConfig,
                key: str, storage_options: dict[str, Any] | None = None,
                rows_per_group: int = 2000) -> list[ShardResult]:
    """Phase 4 for a batch of shards: each writes its deduplicated shard and marker."""
    settings = {**DedupStage.settings(cfg), "work_key": key}

    def filtered(k: int) -> Callable[[Iterable[Document], StageStats], Iterator[Document]]:
        return lambda docs, stats: filter_shard(docs, k, work, cfg, stats, storage_options)

    return [derive_shard(ref, out, STAGE, settings, filtered(k), storage_options, rows_per_group)
            for ref, k, out in zip(shards, indices, outs, strict=True)]


def all_in_one_unit(shards: list[ShardRef], work: str, cfg: DedupConfig, key: str,
                    storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Phases 1-3 in one task, for small corpora: the same functions, files and markers."""
    n = len(shards)
    signatures_unit(shards, list(range(n)), work, cfg, key, storage_options)
    for band, part in band_tasks(cfg):
        band_unit(band, part, n, work, cfg, key, storage_options)

    def merge_round(pairs: list[list[str]], outs: list[str]) -> None:
        for pair, out in zip(pairs, outs, strict=True):
            merge_unit(pair, out, key, storage_options)

    final = merge_components([component_path(work, b, p) for b, p in band_tasks(cfg)], work, storage_options,
                             merge_round)
    return clusters_unit(final, n, work, key, storage_options)


def _reset_work(work: str, key: str, storage_options: dict[str, Any] | None) -> None:
    """Start the dedup work over when its input or parameters changed (the key is the digest
    of every input shard's key and the dedup settings)."""
    marker = Marker(work, storage_options, path=join(work, "_done", "inputs.json"))
    if marker.check(key, require_output=False)[0] is not None:
        return
    fs, path = filesystem(work, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    marker.write(key, {})


@register
class DedupStage(CorpusStage[DedupConfig]):
    name = STAGE
    config_model = DedupConfig
    order = 100
    summary = "MinHash near-dedup across all shards: signatures -> band buckets -> components -> filter."

    @classmethod
    def check(cls, section: DedupConfig, env: StageEnv) -> None:
        check_index(section, env.storage_options)

    @classmethod
    def run(cls, section: DedupConfig, ctx: CorpusContext, inputs: list[ShardRef]) -> CorpusResult:
        so = ctx.storage_options
        work = join(ctx.output, WORK_DIR)
        n = len(inputs)
        key = work_key([r.key for r in inputs], cls.settings(section))
        _reset_work(work, key, so)
        deduped = [join(ctx.output, DEDUPED_DIR, shard_name(k)) for k in range(n)]
        batches = ctx.mapper.batches(n, tasks_per_worker=4)
        if sum(r.rows for r in inputs) < section.single_task_below:
            summary = ctx.mapper.run_one(all_in_one_unit, {"shards": inputs, "work": work, "cfg": section,
                                                           "key": key, "storage_options": so},
                                         name="dedup-clusters-all")
        else:
            ctx.mapper.map(signatures_unit, [{"shards": [inputs[k] for k in b], "indices": b, "work": work,
                                              "cfg": section, "key": key, "storage_options": so} for b in batches],
                           name="dedup-signatures", label=_batch_label)
            units = band_tasks(section)
            ctx.mapper.map(band_unit, [{"band": b, "part": p, "n_shards": n, "work": work, "cfg": section,
                                        "key": key, "storage_options": so} for b, p in units],
                           name="dedup-band", label=lambda item: f"band {item['band']} range {item['part']}")

            def merge_round(pairs: list[list[str]], outs: list[str]) -> None:
                ctx.mapper.map(merge_unit, [{"pair": p, "out": o, "key": key, "storage_options": so}
                                            for p, o in zip(pairs, outs, strict=True)], name="dedup-merge")

            final = merge_components([component_path(work, b, p) for b, p in units], work, so, merge_round)
            summary = ctx.mapper.run_one(clusters_unit, {"final": final, "n_shards": n, "work": work, "key": key,
                                                         "storage_options": so}, name="dedup-clusters")
        results = [r for part in ctx.mapper.map(
            filter_unit, [{"shards": [inputs[k] for k in b], "indices": b, "work": work,
                           "outs": [deduped[k] for k in b], "cfg": section, "key": key, "storage_options": so,
                           "rows_per_group": ctx.rows_per_row_group} for b in batches],
            name="dedup-filter", label=_batch_label) for r in part]
        stats = StageStats()
        for r in results:
            stats.merge(StageStats.from_dict(r.stats[STAGE]))
        ctx.log(f"dedup: {summary['clusters']:,} clusters, {summary['removed']:,} near-duplicates removed")
        refs = [r.ref for r in results if r.ref is not None]
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
