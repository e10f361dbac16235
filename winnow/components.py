"""Connected components of the dedup graph as rounds of independent partition tasks, so that
no task ever holds every duplicated document (the pairwise merge tree's last rounds do).

Algorithm: the alternating large-star / small-star algorithm of Kiveris, Lattanzi, Mirrokni,
Rastogi and Vassilvitskii, "Connected Components in MapReduce and Beyond" (SoCC 2014). Each
round is one map over ``n_parts`` hash partitions of the nodes; a node's task sees exactly its
neighbourhood, rewires it, and addresses every output edge to the partition of the node that
needs it next round:

* large-star at u: connect every strictly larger neighbour of u to m(u), the smallest label in
  u's closed neighbourhood;
* small-star at u: connect u and every smaller neighbour of u to the smallest of them.

Both keep connectivity and never add edges (the paper's Lemmas 1-3), and a graph that a
large round and the following small round both leave unchanged is a set of stars, one per
component, centred on its smallest label. The paper proves that the alternation converges in
O(log^2 n) rounds for n nodes. Node labels are ``mix64(id)``, a bijection whose order looks
random, so no id order (ascending ids along a chain of near-duplicates, say) is worse than a
random labelling, and partitions come out even; the smallest *id*, today's representative,
is recovered exactly at the end. The driver stops with :class:`ConvergenceError` past
``round_cap(n) = 2 * (ceil(log2 n) + 1)**2`` rounds, i.e. constant 1 on (log2 n + 1)^2
large+small phases (the paper states no constant); paths, the slow case, take about
2 log2 n rounds and dedup graphs about 10, so reaching the cap means a bug, not a hard graph.

A task holds its partition's edges: about 2|E|/n_parts, plus the whole neighbourhood of its
star centres, so the one bound that does not shrink with n_parts is the largest component.

Phases, each a plain function that one task runs (``connected_components`` drives them):

1. ``partition_edges`` (map over groups of component files): (doc, root) edges -> labels,
   both directions, addressed to the node's partition: the input of round 0.
2. ``large_star_task`` / ``small_star_task`` (map over partitions, alternating, until a
   large and the following small round change nothing).
3. ``assign_task`` (map over partitions): per star centre, the cluster's size and
   representative (smallest id; documents of earlier runs' index, ids below NEW, win), one row
   per document of this run, addressed to its shard group.
4. ``split_task`` (map over shard groups): ``clusters/part-SSSSS.parquet`` (row, root, size),
   exactly as ``tasks.dedup.split_clusters`` writes them.

Layout: round r reads ``cc/round=RRR/from=QQQQ.parquet``, one file per producer of round r-1,
with one row group per destination partition (empty ones too); task p reads row group p of
each. On S3 a round costs n_parts PUTs of data and 2 n_parts^2 ranged GETs (footer, then the
row group; the size is passed on, so no HEAD), against n_parts^2 PUTs and GETs for a file per
(producer, consumer) pair: a PUT costs 12.5 GETs, and every object is one more to list, expire
and rate-limit, while ranged GETs of one object run in parallel (16 at a time here). Every
output is written atomically and followed by a done-marker (:mod:`winnow.resume`; ``cc/__done__/<phase>-<part>.json``)
carrying the task's stats, so a rerun skips finished tasks and resumes where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winnow.resume import Marker
from winnow.shardio import (
    PartitionSource,
    filesystem,
    iter_partition,
    join,
    read_partition,
    read_table,
    write_partitioned,
    write_table_atomic,
)

NEW = np.uint64(1 << 62)  # ids of this run's documents: NEW | shard << 32 | row (tasks/dedup.py)
LOW32 = np.uint64(0xFFFFFFFF)
SHARD_BITS = np.uint64(0xFFFFFF)
# One directed edge, stored at the partition of `node`: nbr is a neighbour of node.
EDGE_SCHEMA = pa.schema([("node", pa.uint64()), ("nbr", pa.uint64())])
MEMBER_SCHEMA = pa.schema([("doc", pa.uint64()), ("root", pa.uint64()), ("size", pa.uint32())])
CLUSTER_SCHEMA = pa.schema([("row", pa.uint32()), ("root", pa.uint64()), ("size", pa.uint32())])
CC_DIR = "cc"
CLUSTERS_DIR = "clusters"
PARAMS_VERSION = 1

_M64 = 1 << 64
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # splitmix64's finaliser (Stafford's mix 13)
_C1_INV, _C2_INV = pow(_C1, -1, _M64), pow(_C2, -1, _M64)
_PART_SALT = np.uint64(0x9E3779B97F4A7C15)

RunRound = Callable[[Callable[..., Any], list[dict[str, Any]]], list[Any]]


class ComponentsError(ValueError):
    """An edge or round file that cannot be used (missing column, wrong layout)."""


class ConvergenceError(RuntimeError):
    """The rounds went past the cap derived from the proven O(log^2 n) bound."""


# ------------------------------------------------------------------------------- hashing

def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 whose outputs look uniformly random. Node
    labels (so that no id order is an adversarial labelling) and, salted, partitions."""
    z = np.array(x, dtype=np.uint64)  # a copy, mixed in place: one temporary at a time
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(_C1)
        z ^= z >> np.uint64(27)
        z *= np.uint64(_C2)
        z ^= z >> np.uint64(31)
    return z


def unmix64(h: np.ndarray) -> np.ndarray:
    """Inverse of :func:`mix64`: labels back to document ids."""
    z = np.asarray(h, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(31)) ^ (z >> np.uint64(62))
        z = z * np.uint64(_C2_INV)
        z = z ^ (z >> np.uint64(27)) ^ (z >> np.uint64(54))
        z = z * np.uint64(_C1_INV)
        return z ^ (z >> np.uint64(30)) ^ (z >> np.uint64(60))


def partition_of(labels: np.ndarray, n_parts: int) -> np.ndarray:
    """Partition of each node label. Salted and re-mixed, so it is independent of label order:
    star centres have the smallest labels and would otherwise crowd the low partitions."""
    if not 1 <= n_parts < 1 << 31:
        raise ValueError(f"n_parts must be in [1, 2^31), got {n_parts}")
    h = mix64(np.asarray(labels, dtype=np.uint64) ^ _PART_SALT)
    h >>= np.uint64(32)
    h *= np.uint64(n_parts)
    h >>= np.uint64(32)
    return h.astype(np.int32)


def shard_of(ids: np.ndarray) -> np.ndarray:
    """Shard number of this run's document ids (the layout of ``tasks.dedup.doc_ids``)."""
    return ((np.asarray(ids, dtype=np.uint64) >> np.uint64(32)) & SHARD_BITS).astype(np.int64)


def round_cap(n_nodes: int) -> int:
    """Most rounds the driver allows: 2 * (ceil(log2 n) + 1)^2, i.e. (ceil(log2 n) + 1)^2
    large+small phases, the O(log^2 n) bound of Kiveris et al. (2014) with constant 1 on
    phases. Measured worst cases (paths) take about 2 log2 n rounds, far below."""
    return 2 * (math.ceil(math.log2(max(2, n_nodes))) + 1) ** 2


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
    """A share of ``split_clusters``' summary. Cluster counts come from ``assign_task`` (a
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
    """Partial summaries -> the summary dict ``split_clusters`` returns (same keys and values)."""
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


def cluster_path(clusters_dir: str, shard: int) -> str:
    return join(clusters_dir, f"part-{shard:05d}.parquet")


def _marker(work: str, name: str, so: dict[str, Any] | None) -> Marker:
    # The project's one marker format; its validity is the scratch folder's: the driver starts
    # cc/ over whenever its inputs or partition counts differ from the stored params.
    return Marker(join(cc_dir(work), name), so)


def _read_marker(work: str, name: str, so: dict[str, Any] | None) -> dict[str, Any] | None:
    info = _marker(work, name, so).read()
    record = info.get("record") if info is not None else None
    return record if isinstance(record, dict) else None


def _write_marker(work: str, name: str, info: dict[str, Any], so: dict[str, Any] | None) -> None:
    _marker(work, name, so).write("", {"record": info})


def _remove(path: str, so: dict[str, Any] | None) -> None:
    fs, p = filesystem(path, so)
    if fs.exists(p):
        fs.rm(p, recursive=True)


Source = PartitionSource  # columns, destination of each row


def _read_edges(paths: Sequence[str], dest: int, n_dest: int, so: dict[str, Any] | None,
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

def _done_round(work: str, name: str, so: dict[str, Any] | None) -> RoundStats | None:
    """The stats a finished round task recorded, marked as skipped; None if not done."""
    done = _read_marker(work, name, so)
    return None if done is None else replace(RoundStats.from_dict(done), skipped=True)


def _done_partial(work: str, name: str, so: dict[str, Any] | None) -> PartialSummary | None:
    """The result a finished assign/split task recorded, marked as skipped; None if not done."""
    done = _read_marker(work, name, so)
    if done is None:
        return None
    found = PartialSummary.from_dict(done)
    return replace(found, stats=replace(found.stats, skipped=True) if found.stats else None)


def partition_edges(edge_files: Sequence[str], producer: int, work: str, n_parts: int,
                    storage_options: dict[str, Any] | None = None) -> RoundStats:
    """Map step: (doc, root) edges of some component files -> labelled edges in both
    directions, each addressed to the partition of its first node (round 0's input).

    Edges repeat across bands (the same pair groups in several); they are dropped here once
    per producer, and across producers by round 0."""
    so = storage_options
    name = f"partition-{producer:04d}"
    if (finished := _done_round(work, name, so)) is not None:
        return finished
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
    _write_marker(work, name, stats.to_dict(), so)
    return stats


def large_star_task(round: int, part: int, work: str, n_parts: int, n_inputs: int,
                    input_sizes: list[int] | None = None,
                    storage_options: dict[str, Any] | None = None) -> RoundStats:
    """Large-star for the nodes of one partition: each strictly larger neighbour v of u is
    connected to m(u) = min(u, neighbours of u). Output (v, m(u)) goes to v's partition, where
    the small-star round needs it (keyed by the larger end)."""
    so = storage_options
    name = f"round={round:03d}-large-{part:04d}"
    if (finished := _done_round(work, name, so)) is not None:
        return finished
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
    _write_marker(work, name, stats.to_dict(), so)
    return stats


def small_star_task(round: int, part: int, work: str, n_parts: int, n_inputs: int,
                    input_sizes: list[int] | None = None,
                    storage_options: dict[str, Any] | None = None) -> RoundStats:
    """Small-star for the nodes of one partition, which receive their smaller neighbours: u
    and each smaller neighbour are connected to the smallest of them. Output edges go both
    ways (large-star needs whole neighbourhoods)."""
    so = storage_options
    name = f"round={round:03d}-small-{part:04d}"
    if (finished := _done_round(work, name, so)) is not None:
        return finished
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
    _write_marker(work, name, stats.to_dict(), so)
    return stats


def shard_groups(n_shards: int, shards_per_group: int) -> list[range]:
    """Consecutive shard ranges of ``shards_per_group``, one per split task (at least one)."""
    per = max(1, shards_per_group)
    return [range(s, min(n_shards, s + per)) for s in range(0, n_shards, per)] or [range(0)]


def assign_task(part: int, work: str, n_parts: int, final_round: int, n_shards: int, shards_per_group: int,
                input_sizes: list[int] | None = None,
                storage_options: dict[str, Any] | None = None) -> PartialSummary:
    """After convergence every component is a star whose centre (smallest label) lives here
    with all its leaves: size = 1 + leaves, representative = smallest document id (index
    documents, below NEW, win). One (doc, root, size) row per document of this run, addressed
    to its shard group."""
    so = storage_options
    name = f"assign-{part:04d}"
    if (found := _done_partial(work, name, so)) is not None:
        return found
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
    _write_marker(work, name, result.to_dict(), so)
    return result


def split_task(group: int, work: str, n_parts: int, n_shards: int, shards_per_group: int, clusters_dir: str,
               input_sizes: list[int] | None = None,
               storage_options: dict[str, Any] | None = None) -> PartialSummary:
    """The cluster files of one group of shards: ``part-SSSSS.parquet`` (row, root, size)
    sorted by row, written for every shard (empty when none of its documents has a
    duplicate), as ``tasks.dedup.filter_shard`` reads them."""
    so = storage_options
    name = f"split-{group:04d}"
    if (found := _done_partial(work, name, so)) is not None:
        return found
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
    _write_marker(work, name, result.to_dict(), so)
    return result


# ------------------------------------------------------------------------------- driver

def in_process(fn: Callable[..., Any], kwargs_list: list[dict[str, Any]]) -> list[Any]:
    """The default ``run_round``: the tasks of a round one after the other in this process."""
    return [fn(**kw) for kw in kwargs_list]


# A runner that ships results as JSON (a remote task's return value) gives dicts back.
def _round_stats(value: Any) -> RoundStats:
    return RoundStats.from_dict(value) if isinstance(value, dict) else value


def _partial(value: Any) -> PartialSummary:
    return PartialSummary.from_dict(value) if isinstance(value, dict) else value


def connected_components(edge_files: Sequence[str], work: str, n_parts: int, n_shards: int,
                         run_round: RunRound | None = None, *, storage_options: dict[str, Any] | None = None,
                         n_groups: int | None = None, clusters_dir: str | None = None,
                         keep_rounds: bool = False, max_rounds: int | None = None,
                         on_round: Callable[[str, list[Any]], None] | None = None) -> dict[str, Any]:
    """Component files (doc, root) -> ``clusters/part-SSSSS.parquet`` for ``n_shards`` shards
    and the summary ``tasks.dedup.split_clusters`` returns (plus ``rounds``), with every step a
    round of tasks whose memory is bounded by one partition.

    ``run_round(fn, kwargs_list)`` runs one round's tasks and returns their results in order
    (default: one after the other here; winnow's flow maps them as Prefect tasks). Scratch
    files go to ``work/cc``; a round's inputs are deleted once the round is done unless
    ``keep_rounds``. Rerunning resumes: finished tasks are skipped by their markers. A rerun
    with other edge files or partition counts starts the scratch folder over.
    ``on_round(phase, results)`` sees each round's results (progress, benchmarks).
    About ``n_groups`` split tasks (default ``n_parts``; fewer than twice that) each write the
    cluster files of consecutive shards; ``max_rounds`` overrides :func:`round_cap` (tests)."""
    so = storage_options
    if n_parts < 1 or n_shards < 0:
        raise ValueError(f"n_parts must be >= 1 and n_shards >= 0, got {n_parts}, {n_shards}")
    run = run_round or in_process
    # Whole shards per split task, rounded down: a group never holds more than its share of the
    # duplicated documents (rounding up gave two shards per task once shards passed n_parts).
    per = max(1, n_shards // max(1, n_groups or n_parts))
    n_groups = len(shard_groups(n_shards, per))
    clusters_dir = clusters_dir or join(work, CLUSTERS_DIR)
    producers = max(1, min(n_parts, len(edge_files)))
    params = {"version": PARAMS_VERSION, "edge_files": list(edge_files), "n_parts": n_parts, "n_shards": n_shards,
              "shards_per_group": per, "producers": producers, "clusters_dir": clusters_dir}
    previous = _read_marker(work, "params", so)
    if previous != params:
        _remove(cc_dir(work), so)
        _write_marker(work, "params", params, so)

    def notify(phase: str, results: list[Any]) -> list[Any]:
        if on_round is not None:
            on_round(phase, results)
        return results

    stats = notify("partition", [_round_stats(r) for r in run(partition_edges, [
        {"edge_files": list(edge_files[q::producers]), "producer": q, "work": work, "n_parts": n_parts,
         "storage_options": so} for q in range(producers)])])
    rnd, previous_changed, cap = 0, -1, max_rounds
    while True:
        fn = large_star_task if rnd % 2 == 0 else small_star_task
        sizes = [s.bytes_out for s in stats]
        stats = notify(fn.__name__, [_round_stats(r) for r in run(fn, [
            {"round": rnd, "part": p, "work": work, "n_parts": n_parts, "n_inputs": len(sizes),
             "input_sizes": sizes, "storage_options": so} for p in range(n_parts)])])
        changed = sum(s.changed for s in stats)
        if cap is None:
            cap = round_cap(sum(s.nodes for s in stats))  # round 0 keys every node exactly once
        if not keep_rounds:
            _remove(round_dir(work, rnd), so)
        if rnd % 2 == 1 and changed == 0 and previous_changed == 0:
            break
        if rnd + 1 >= cap:
            raise ConvergenceError(
                f"connected components: {changed:,} edges still changing after {rnd + 1} rounds, the cap "
                f"({cap}; 2*(ceil(log2 n)+1)^2 from the O(log^2 n) bound of the alternating algorithm, "
                f"Kiveris et al. 2014): this is a bug, not the data. Work kept in {cc_dir(work)}")
        previous_changed, rnd = changed, rnd + 1
    sizes = [s.bytes_out for s in stats]
    partials = notify(assign_task.__name__, [_partial(r) for r in run(assign_task, [
        {"part": p, "work": work, "n_parts": n_parts, "final_round": rnd, "n_shards": n_shards,
         "shards_per_group": per, "input_sizes": sizes, "storage_options": so} for p in range(n_parts)])])
    if not keep_rounds:
        _remove(round_dir(work, rnd + 1), so)
    sizes = [p.stats.bytes_out if p.stats else 0 for p in partials]
    partials += notify(split_task.__name__, [_partial(r) for r in run(split_task, [
        {"group": g, "work": work, "n_parts": n_parts, "n_shards": n_shards, "shards_per_group": per,
         "clusters_dir": clusters_dir, "input_sizes": sizes, "storage_options": so} for g in range(n_groups)])])
    if not keep_rounds:
        _remove(join(cc_dir(work), "assign"), so)
    return {**merge_partials(partials), "rounds": rnd + 1}


# ------------------------------------------------------------------------------- reference

def components_in_memory(edge_files: Sequence[str], n_shards: int, clusters_dir: str,
                         storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The same clusters and summary as :func:`connected_components`, computed in one process
    with scipy over every edge at once: the reference the distributed rounds are tested
    against, and what small corpora (dedup.single_task_below) use, where rounds of tasks would
    cost more than they save. Memory: every edge of the run."""
    from scipy.sparse import coo_matrix  # noqa: PLC0415 - scipy's graph code, only for this path
    from scipy.sparse.csgraph import connected_components as scipy_components  # noqa: PLC0415 - as above

    tables = [read_table(p, storage_options) for p in edge_files]
    docs = np.concatenate([t.column("doc").to_numpy() for t in tables]) if tables else np.zeros(0, np.uint64)
    roots = np.concatenate([t.column("root").to_numpy() for t in tables]) if tables else np.zeros(0, np.uint64)
    del tables
    edge = docs != roots  # a self-loop is no edge, as in partition_edges
    docs, roots = docs[edge], roots[edge]
    nodes, inverse = np.unique(np.concatenate([docs, roots]), return_inverse=True)
    if len(nodes):
        u, v = inverse[: len(docs)], inverse[len(docs):]
        graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(len(nodes), len(nodes)))
        _, labels = scipy_components(graph, directed=False)
        # Representative = smallest document id of the component (nodes are sorted: first index).
        comp_min = np.full(labels.max() + 1, len(nodes), dtype=np.int64)
        np.minimum.at(comp_min, labels, np.arange(len(nodes)))
        node_roots = nodes[comp_min[labels]]
    else:
        node_roots = nodes
    _, inv, counts = np.unique(node_roots, return_inverse=True, return_counts=True)
    sizes = counts[inv].astype(np.uint32)
    new = (nodes & NEW) != 0  # documents of earlier runs (index) are not in this run's shards
    shards = shard_of(nodes)
    for s in range(n_shards):
        sel = new & (shards == s)
        write_table_atomic(pa.table({"row": (nodes[sel] & LOW32).astype(np.uint32), "root": node_roots[sel],
                                     "size": sizes[sel]}, schema=CLUSTER_SCHEMA),
                           cluster_path(clusters_dir, s), storage_options)
    hist = {int(k): int(v) for k, v in zip(*np.unique(counts, return_counts=True))}
    new_roots = int(((np.unique(node_roots) & NEW) != 0).sum())
    return {"clusters": int(len(counts)), "documents_in_clusters": int(new.sum()),
            "removed": int(new.sum()) - new_roots, "cluster_size_histogram": hist}
