"""The tasks of the connected-components rounds (:mod:`.components` drives them): each reads
the row group addressed to it in every producer's shuffle file, rewires its partition's edges
and writes its own file, then a done-marker with its stats, so a rerun skips it.

Scratch layout: round r reads ``cc/round=RRR/from=QQQQ.parquet``, one file per producer of
round r-1, with one row group per destination partition (empty ones too); task p reads row
group p of each. ``cc/assign/from=PPPP.parquet`` holds the (doc, root, size) rows of every
partition's stars, addressed to shard groups. (A little over 400 lines for one job: the
tasks share the edge reading, sorting and marking, which would otherwise be split apart.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.resume import Marker, resumable
from winnow.storage import StorageOptions, filesystem, join, write_table_atomic
from winnow.tasks.dedup.labels import mix64, partition_of, unmix64
from winnow.tasks.dedup.layout import CLUSTER_SCHEMA, LOW32, NEW, cluster_path, shard_of
from winnow.tasks.dedup.shuffle import PartitionSource, iter_partition, read_partition, write_partitioned

# One directed edge, stored at the partition of `node`: nbr is a neighbour of node.
EDGE_SCHEMA = pa.schema([("node", pa.uint64()), ("nbr", pa.uint64())])
MEMBER_SCHEMA = pa.schema([("doc", pa.uint64()), ("root", pa.uint64()), ("size", pa.uint32())])
CC_DIR = "cc"


class ComponentsError(ValueError):
    """An edge or round file that cannot be used (missing column, wrong layout)."""


# ------------------------------------------------------------------------------- stats

@dataclass(frozen=True)
class RoundStats:
    """What one task did. ``changed`` counts the edges it rewired: 0 in every task of a large
    round and of the following small round means the graph is a set of stars."""

    phase: str
    round: int
    part: int
    entries_in: int = 0
    entries_out: int = 0
    changed: int = 0
    nodes: int = 0
    max_degree: int = 0
    bad: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundStats:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class PartialSummary:
    """A share of the summary. Cluster counts come from ``assign_task`` (a
    component lives wholly in its centre's partition, so each is counted once, including
    clusters of index documents only, which no shard holds); document counts come from
    ``split_task``. Their sum is the summary."""

    clusters: int = 0
    documents_in_clusters: int = 0
    removed: int = 0
    cluster_size_histogram: dict[int, int] = field(default_factory=dict)
    stats: RoundStats | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"clusters": self.clusters, "documents_in_clusters": self.documents_in_clusters,
                "removed": self.removed,
                "cluster_size_histogram": {str(k): v for k, v in self.cluster_size_histogram.items()},
                "stats": None if self.stats is None else self.stats.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartialSummary:
        return cls(clusters=int(d["clusters"]), documents_in_clusters=int(d["documents_in_clusters"]),
                   removed=int(d["removed"]),
                   cluster_size_histogram={int(k): int(v) for k, v in d["cluster_size_histogram"].items()},
                   stats=None if d.get("stats") is None else RoundStats.from_dict(d["stats"]))


def merge_partials(parts: Sequence[PartialSummary]) -> dict[str, Any]:
    """Partial summaries -> the summary dict :func:`components_in_memory` returns (same keys and values)."""
    hist: dict[int, int] = {}
    for p in parts:
        for k, v in p.cluster_size_histogram.items():
            hist[k] = hist.get(k, 0) + v
    return {"clusters": sum(p.clusters for p in parts),
            "documents_in_clusters": sum(p.documents_in_clusters for p in parts),
            "removed": sum(p.removed for p in parts),
            "cluster_size_histogram": dict(sorted(hist.items()))}


# ------------------------------------------------------------------------------- paths, IO

def cc_dir(work: str) -> str:
    return join(work, CC_DIR)


def round_dir(work: str, rnd: int) -> str:
    return join(cc_dir(work), f"round={rnd:03d}")


def round_path(work: str, rnd: int, producer: int) -> str:
    """Input of round ``rnd`` written by ``producer`` (a task of round rnd-1, or of the
    partition step for round 0): one row group per destination partition."""
    return join(round_dir(work, rnd), f"from={producer:04d}.parquet")


def assign_path(work: str, part: int) -> str:
    return join(cc_dir(work), "assign", f"from={part:04d}.parquet")


class _Recorded(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


Rec = TypeVar("Rec", bound=_Recorded)


def _resumed(work: str, name: str, so: StorageOptions, run: Callable[[], Rec],
             skipped: Callable[[dict[str, Any]], Rec]) -> Rec:
    """A task of the rounds, or what it recorded when it is done. Its marker's validity is the
    scratch folder's: the driver starts cc/ over whenever its inputs or partition counts differ
    from the stored params, so the key is empty."""
    def skip(done: dict[str, Any]) -> Rec | None:
        record = done.get("record")
        return skipped(record) if isinstance(record, dict) else None

    def run_and_record() -> tuple[Rec, dict[str, Any]]:
        result = run()
        return result, {"record": result.to_dict()}

    return resumable(Marker(join(cc_dir(work), name), so), "", run_and_record, skip, require_output=False)[0]


def _skipped_round(record: dict[str, Any]) -> RoundStats:
    """The stats a finished round task recorded, marked as skipped."""
    return replace(RoundStats.from_dict(record), skipped=True)


def _skipped_partial(record: dict[str, Any]) -> PartialSummary:
    """The result a finished assign/split task recorded, marked as skipped."""
    found = PartialSummary.from_dict(record)
    return replace(found, stats=replace(found.stats, skipped=True) if found.stats else None)


def remove_tree(path: str, so: StorageOptions) -> None:
    fs, p = filesystem(path, so)
    if fs.exists(p):
        fs.rm(p, recursive=True)


Source = PartitionSource  # columns, destination of each row


def _read_edges(paths: Sequence[str], dest: int, n_dest: int, so: StorageOptions,
                sizes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The edges addressed to this task, sorted by (node, nbr) without duplicates.

    Producers repeat edges (a pair grouped in several bands reaches round 0 from several
    producers; several nodes send large-star the same edge), so pieces are merged into the
    deduplicated set whenever they outgrow it: memory follows the distinct edges, not the
    copies (at most twice them plus one piece), for about 1.6x the sorting of one merge."""
    node, nbr = np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    pending: list[pa.Table] = []
    pending_rows = 0

    def merge() -> tuple[np.ndarray, np.ndarray]:
        nonlocal node, nbr
        columns = [np.concatenate([node, *(np.asarray(t.column("node").to_numpy()) for t in pending)]),
                   np.concatenate([nbr, *(np.asarray(t.column("nbr").to_numpy()) for t in pending)])]
        node = nbr = np.zeros(0, np.uint64)  # the copies in `columns` are all that is left
        pending.clear()
        pa.default_memory_pool().release_unused()
        return _sort_owned(columns)

    for table in iter_partition(paths, dest, n_dest, EDGE_SCHEMA, so, sizes):
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows > max(len(node), 1 << 18):  # merges double in size: sorting stays linear
            node, nbr = merge()
            pending_rows = 0
    if pending or len(paths) == 0:
        node, nbr = merge()
    return node, nbr


def _sort_owned(pair: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(node, nbr) pairs sorted with duplicates removed, from arrays nobody else holds (taken
    out of ``pair``), so each input is freed as soon as its sorted copy exists: about 40 bytes per edge at the peak. Two
    argsorts (the second stable) give np.lexsort's order at about half its cost."""
    nbr, node = pair.pop(), pair.pop()
    if len(node) == 0:
        return node, nbr
    o = np.argsort(nbr)
    o = o[np.argsort(node[o], kind="stable")]
    node = node[o]
    nbr = nbr[o]
    del o
    keep = np.empty(len(node), dtype=bool)
    keep[0] = True
    np.not_equal(node[1:], node[:-1], out=keep[1:])
    keep[1:] |= nbr[1:] != nbr[:-1]
    if keep.all():
        return node, nbr
    return node[keep], nbr[keep]


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))


def _inputs(work: str, rnd: int, n_inputs: int) -> list[str]:
    return [round_path(work, rnd, q) for q in range(n_inputs)]


def _edges(node: np.ndarray, nbr: np.ndarray, n_parts: int) -> Source:
    """Directed edges node -> nbr, each addressed to the partition of node."""
    return {"node": node, "nbr": nbr}, partition_of(node, n_parts)


# ------------------------------------------------------------------------------- phases

def partition_edges(edge_files: Sequence[str], producer: int, work: str, n_parts: int,
                    storage_options: StorageOptions = None) -> RoundStats:
    """Map step: (doc, root) edges of some component files -> labelled edges in both
    directions, each addressed to the partition of its first node (round 0's input).

    Edges repeat across bands (the same pair groups in several); they are dropped here once
    per producer, and across producers by round 0."""
    so = storage_options
    name = f"partition-{producer:04d}"
    def run() -> RoundStats:
        t0 = time.perf_counter()
        los, his = [], []
        rows = loops = 0
        for path in edge_files:
            fs, p = filesystem(path, so)
            with fs.open(p, "rb") as fh:
                pf = pq.ParquetFile(fh)
                for col in ("doc", "root"):
                    if col not in pf.schema_arrow.names:
                        raise ComponentsError(f"{path}: no {col!r} column (component files have doc, root)")
                    if not pa.types.is_integer(pf.schema_arrow.field(col).type):
                        raise ComponentsError(f"{path}: column {col!r} is {pf.schema_arrow.field(col).type}, "
                                              "not an integer id")
                table = pf.read(columns=["doc", "root"])
            rows += table.num_rows
            a = mix64(table.column("doc").to_numpy().astype(np.uint64, copy=False))
            b = mix64(table.column("root").to_numpy().astype(np.uint64, copy=False))
            del table
            edge = a != b  # a self-loop is no edge; band_components never writes one, counted if present
            loops += int((~edge).sum())
            los.append(np.minimum(a[edge], b[edge]))
            his.append(np.maximum(a[edge], b[edge]))
            del a, b, edge
        columns = [np.concatenate([np.zeros(0, np.uint64), *los]), np.concatenate([np.zeros(0, np.uint64), *his])]
        los.clear()
        his.clear()
        pa.default_memory_pool().release_unused()
        lo, hi = _sort_owned(columns)
        size = write_partitioned(round_path(work, 0, producer), EDGE_SCHEMA,
                                [_edges(lo, hi, n_parts), _edges(hi, lo, n_parts)], n_parts, so)
        stats = RoundStats(phase="partition", round=-1, part=producer, entries_in=rows, entries_out=2 * len(lo),
                           bad=loops, bytes_out=size, seconds=time.perf_counter() - t0)
        return stats

    return _resumed(work, name, so, run, _skipped_round)


def large_star_task(round: int, part: int, work: str, n_parts: int, n_inputs: int,
                    input_sizes: list[int] | None = None,
                    storage_options: StorageOptions = None) -> RoundStats:
    """Large-star for the nodes of one partition: each strictly larger neighbour v of u is
    connected to m(u) = min(u, neighbours of u). Output (v, m(u)) goes to v's partition, where
    the small-star round needs it (keyed by the larger end)."""
    so = storage_options
    name = f"round={round:03d}-large-{part:04d}"
    def run() -> RoundStats:
        t0 = time.perf_counter()
        node, nbr = _read_edges(_inputs(work, round, n_inputs), part, n_parts, so, input_sizes)
        starts = _group_starts(node)
        degree = np.diff(np.append(starts, len(node)))
        m = np.repeat(np.minimum(node[starts], nbr[starts]), degree)  # sorted: first nbr is the smallest
        larger = nbr > node
        out_node, out_nbr = nbr[larger], m[larger]
        changed = int((larger & (m != node)).sum())
        size = write_partitioned(round_path(work, round + 1, part), EDGE_SCHEMA, [_edges(out_node, out_nbr, n_parts)],
                                n_parts, so)
        stats = RoundStats(phase="large", round=round, part=part, entries_in=len(node), entries_out=len(out_node),
                           changed=changed, nodes=len(starts), max_degree=int(degree.max(initial=0)),
                           bytes_out=size, seconds=time.perf_counter() - t0)
        return stats

    return _resumed(work, name, so, run, _skipped_round)


def small_star_task(round: int, part: int, work: str, n_parts: int, n_inputs: int,
                    input_sizes: list[int] | None = None,
                    storage_options: StorageOptions = None) -> RoundStats:
    """Small-star for the nodes of one partition, which receive their smaller neighbours: u
    and each smaller neighbour are connected to the smallest of them. Output edges go both
    ways (large-star needs whole neighbourhoods)."""
    so = storage_options
    name = f"round={round:03d}-small-{part:04d}"
    def run() -> RoundStats:
        t0 = time.perf_counter()
        node, nbr = _read_edges(_inputs(work, round, n_inputs), part, n_parts, so, input_sizes)
        wrong_way = nbr >= node  # large-star only sends (larger, smaller)
        if wrong_way.any():
            node, nbr = node[~wrong_way], nbr[~wrong_way]
        starts = _group_starts(node)
        degree = np.diff(np.append(starts, len(node)))
        m = nbr[starts]
        m_rep = np.repeat(m, degree)
        rewired = nbr != m_rep
        a = np.concatenate([nbr[rewired], node[starts]])
        b = np.concatenate([m_rep[rewired], m])
        size = write_partitioned(round_path(work, round + 1, part), EDGE_SCHEMA,
                                [_edges(a, b, n_parts), _edges(b, a, n_parts)], n_parts, so)
        stats = RoundStats(phase="small", round=round, part=part, entries_in=len(node), entries_out=2 * len(a),
                           changed=int(rewired.sum()), nodes=len(starts), max_degree=int(degree.max(initial=0)),
                           bad=int(wrong_way.sum()), bytes_out=size, seconds=time.perf_counter() - t0)
        return stats

    return _resumed(work, name, so, run, _skipped_round)


def shard_groups(n_shards: int, shards_per_group: int) -> list[range]:
    """Consecutive shard ranges of ``shards_per_group``, one per split task (at least one)."""
    per = max(1, shards_per_group)
    return [range(s, min(n_shards, s + per)) for s in range(0, n_shards, per)] or [range(0)]


def assign_task(part: int, work: str, n_parts: int, final_round: int, n_shards: int, shards_per_group: int,
                input_sizes: list[int] | None = None,
                storage_options: StorageOptions = None) -> PartialSummary:
    """After convergence every component is a star whose centre (smallest label) lives here
    with all its leaves: size = 1 + leaves, representative = smallest document id (index
    documents, below NEW, win). One (doc, root, size) row per document of this run, addressed
    to its shard group."""
    so = storage_options
    name = f"assign-{part:04d}"
    def run() -> PartialSummary:
        t0 = time.perf_counter()
        groups = shard_groups(n_shards, shards_per_group)
        node, nbr = _read_edges(_inputs(work, final_round + 1, n_parts), part, n_parts, so, input_sizes)
        centre_side = node < nbr  # (leaf -> centre) copies sit at the leaves' partitions
        centre, leaf = node[centre_side], nbr[centre_side]
        entries_in = len(node)
        del node, nbr
        starts = _group_starts(centre)
        leaves = np.diff(np.append(starts, len(centre)))
        size = (leaves + 1).astype(np.uint32)
        centre_id, leaf_id = unmix64(centre[starts]), unmix64(leaf)
        rep = np.minimum(centre_id, np.minimum.reduceat(leaf_id, starts)) if len(starts) else centre_id
        doc = np.concatenate([centre_id, leaf_id])
        root = np.concatenate([rep, np.repeat(rep, leaves)])
        sizes = np.concatenate([size, np.repeat(size, leaves)])
        new = (doc & NEW) != 0  # documents of earlier runs (index) are in no shard of this run
        shard = shard_of(doc)
        out_of_range = new & (shard >= n_shards)
        keep = new & ~out_of_range
        members = {"doc": doc[keep], "root": root[keep], "size": sizes[keep]}
        nbytes = write_partitioned(assign_path(work, part), MEMBER_SCHEMA,
                                  [(members, shard[keep] // max(1, shards_per_group))], len(groups), so)
        hist_k, hist_v = np.unique(size, return_counts=True)
        result = PartialSummary(
            clusters=len(starts), cluster_size_histogram={int(k): int(v) for k, v in zip(hist_k, hist_v)},
            stats=RoundStats(phase="assign", round=final_round + 1, part=part, entries_in=entries_in,
                             entries_out=int(keep.sum()), nodes=len(starts), max_degree=int(leaves.max(initial=0)),
                             bad=int(out_of_range.sum()), bytes_out=nbytes, seconds=time.perf_counter() - t0))
        return result

    return _resumed(work, name, so, run, _skipped_partial)


def split_task(group: int, work: str, n_parts: int, n_shards: int, shards_per_group: int, clusters_dir: str,
               input_sizes: list[int] | None = None,
               storage_options: StorageOptions = None) -> PartialSummary:
    """The cluster files of one group of shards: ``part-SSSSS.parquet`` (row, root, size)
    sorted by row, written for every shard (empty when none of its documents has a
    duplicate), as :func:`winnow.tasks.dedup.filter.filter_shard` reads them."""
    so = storage_options
    name = f"split-{group:04d}"
    def run() -> PartialSummary:
        t0 = time.perf_counter()
        groups = shard_groups(n_shards, shards_per_group)
        cols = read_partition([assign_path(work, p) for p in range(n_parts)], group, len(groups), MEMBER_SCHEMA, so,
                               input_sizes)
        order = np.argsort(cols["doc"])  # NEW | shard << 32 | row: shard-major, row-minor
        doc, root, size = cols["doc"][order], cols["root"][order], cols["size"][order]
        shard = shard_of(doc)
        bounds = np.searchsorted(shard, [groups[group].start, *[s + 1 for s in groups[group]]])
        for k, s in enumerate(groups[group]):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            table = pa.table({"row": (doc[lo:hi] & LOW32).astype(np.uint32), "root": root[lo:hi],
                              "size": size[lo:hi]}, schema=CLUSTER_SCHEMA)
            write_table_atomic(table, cluster_path(clusters_dir, s), so)
        result = PartialSummary(
            documents_in_clusters=len(doc), removed=int((root != doc).sum()),
            stats=RoundStats(phase="split", round=-1, part=group, entries_in=len(doc), entries_out=len(doc),
                             nodes=len(groups[group]), seconds=time.perf_counter() - t0))
        return result

    return _resumed(work, name, so, run, _skipped_partial)
