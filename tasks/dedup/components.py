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
   exactly as :func:`components_in_memory` writes them.

Layout: round r reads ``cc/round=RRR/from=QQQQ.parquet``, one file per producer of round r-1,
with one row group per destination partition (empty ones too); task p reads row group p of
each. On S3 a round costs n_parts PUTs of data and 2 n_parts^2 ranged GETs (footer, then the
row group; the size is passed on, so no HEAD), against n_parts^2 PUTs and GETs for a file per
(producer, consumer) pair: a PUT costs 12.5 GETs, and every object is one more to list, expire
and rate-limit, while ranged GETs of one object run in parallel (16 at a time here). Every
output is written atomically and followed by a done-marker (:mod:`winnow.resume`, named after
``cc/<phase>-<part>``)
carrying the task's stats, so a rerun skips finished tasks and resumes where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from winnow.resume import Marker, resumable
from winnow.stage import Work
from winnow.storage import StorageOptions, join, read_table, write_table_atomic
from winnow.tasks.dedup.layout import CLUSTER_SCHEMA, CLUSTERS_DIR, LOW32, NEW, cluster_path, shard_of
from winnow.tasks.dedup.rounds import (
    PartialSummary,
    RoundStats,
    assign_task,
    cc_dir,
    large_star_task,
    merge_partials,
    partition_edges,
    remove_tree,
    round_dir,
    shard_groups,
    small_star_task,
    split_task,
)

PARAMS_VERSION = 1

# (phase, its tasks) -> their results in order: the tasks of one round, run where the caller says.
RunRound = Callable[[str, Sequence[Work[Any]]], list[Any]]


class ConvergenceError(RuntimeError):
    """The rounds went past the cap derived from the proven O(log^2 n) bound."""


def round_cap(n_nodes: int) -> int:
    """Most rounds the driver allows: 2 * (ceil(log2 n) + 1)^2, i.e. (ceil(log2 n) + 1)^2
    large+small phases, the O(log^2 n) bound of Kiveris et al. (2014) with constant 1 on
    phases. Measured worst cases (paths) take about 2 log2 n rounds, far below."""
    return 2 * (math.ceil(math.log2(max(2, n_nodes))) + 1) ** 2


# ------------------------------------------------------------------------------- driver

@dataclass(frozen=True)
class PartitionWork:
    """One task of the partition step: :func:`partition_edges`."""

    edge_files: list[str]
    producer: int
    work: str
    n_parts: int
    storage_options: StorageOptions = None

    def __call__(self) -> RoundStats:
        return partition_edges(self.edge_files, self.producer, self.work, self.n_parts, self.storage_options)

    def label(self) -> str:
        return f"producer {self.producer}"


@dataclass(frozen=True)
class StarWork:
    """One task of a round: large-star on even rounds, small-star on odd ones."""

    round: int
    part: int
    work: str
    n_parts: int
    n_inputs: int
    input_sizes: list[int] | None = None
    storage_options: StorageOptions = None

    def __call__(self) -> RoundStats:
        fn = large_star_task if self.round % 2 == 0 else small_star_task
        return fn(self.round, self.part, self.work, self.n_parts, self.n_inputs, self.input_sizes,
                  self.storage_options)

    def label(self) -> str:
        return f"round {self.round} part {self.part}"


@dataclass(frozen=True)
class AssignWork:
    """One task of the assign step: :func:`assign_task`."""

    part: int
    work: str
    n_parts: int
    final_round: int
    n_shards: int
    shards_per_group: int
    input_sizes: list[int] | None = None
    storage_options: StorageOptions = None

    def __call__(self) -> PartialSummary:
        return assign_task(self.part, self.work, self.n_parts, self.final_round, self.n_shards,
                           self.shards_per_group, self.input_sizes, self.storage_options)

    def label(self) -> str:
        return f"part {self.part}"


@dataclass(frozen=True)
class SplitWork:
    """One task of the split step: :func:`split_task`."""

    group: int
    work: str
    n_parts: int
    n_shards: int
    shards_per_group: int
    clusters_dir: str
    input_sizes: list[int] | None = None
    storage_options: StorageOptions = None

    def __call__(self) -> PartialSummary:
        return split_task(self.group, self.work, self.n_parts, self.n_shards, self.shards_per_group,
                          self.clusters_dir, self.input_sizes, self.storage_options)

    def label(self) -> str:
        return f"group {self.group}"


def in_process(phase: str, items: Sequence[Work[Any]]) -> list[Any]:
    """The default ``run_round``: the tasks of a round one after the other in this process."""
    return [item() for item in items]


# A runner that ships results as JSON (a remote task's return value) gives dicts back.
def _round_stats(value: Any) -> RoundStats:
    return RoundStats.from_dict(value) if isinstance(value, dict) else value


def _partial(value: Any) -> PartialSummary:
    return PartialSummary.from_dict(value) if isinstance(value, dict) else value


def connected_components(edge_files: Sequence[str], work: str, n_parts: int, n_shards: int,
                         run_round: RunRound | None = None, *, storage_options: StorageOptions = None,
                         n_groups: int | None = None, clusters_dir: str | None = None,
                         keep_rounds: bool = False, max_rounds: int | None = None,
                         on_round: Callable[[str, list[Any]], None] | None = None) -> dict[str, Any]:
    """Component files (doc, root) -> ``clusters/part-SSSSS.parquet`` for ``n_shards`` shards
    and the summary :func:`components_in_memory` returns (plus ``rounds``), with every step a
    round of tasks whose memory is bounded by one partition.

    ``run_round(phase, items)`` runs one round's tasks (typed work items: ``item()`` runs
    one) and returns their results in order
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

    def start_over() -> tuple[bool, dict[str, Any]]:
        remove_tree(cc_dir(work), so)
        return True, {"record": params}

    resumable(Marker(join(cc_dir(work), "params"), so), "", start_over,
              lambda done: False if done.get("record") == params else None, require_output=False)

    def notify(phase: str, results: list[Any]) -> list[Any]:
        if on_round is not None:
            on_round(phase, results)
        return results

    stats = notify("partition", [_round_stats(r) for r in run(partition_edges.__name__, [
        PartitionWork(list(edge_files[q::producers]), q, work, n_parts, so) for q in range(producers)])])
    rnd, previous_changed, cap = 0, -1, max_rounds
    while True:
        fn = large_star_task if rnd % 2 == 0 else small_star_task
        sizes = [s.bytes_out for s in stats]
        stats = notify(fn.__name__, [_round_stats(r) for r in run(fn.__name__, [
            StarWork(rnd, p, work, n_parts, len(sizes), sizes, so) for p in range(n_parts)])])
        changed = sum(s.changed for s in stats)
        if cap is None:
            cap = round_cap(sum(s.nodes for s in stats))  # round 0 keys every node exactly once
        if not keep_rounds:
            remove_tree(round_dir(work, rnd), so)
        if rnd % 2 == 1 and changed == 0 and previous_changed == 0:
            break
        if rnd + 1 >= cap:
            raise ConvergenceError(
                f"connected components: {changed:,} edges still changing after {rnd + 1} rounds, the cap "
                f"({cap}; 2*(ceil(log2 n)+1)^2 from the O(log^2 n) bound of the alternating algorithm, "
                f"Kiveris et al. 2014): this is a bug, not the data. Work kept in {cc_dir(work)}")
        previous_changed, rnd = changed, rnd + 1
    sizes = [s.bytes_out for s in stats]
    partials = notify(assign_task.__name__, [_partial(r) for r in run(assign_task.__name__, [
        AssignWork(p, work, n_parts, rnd, n_shards, per, sizes, so) for p in range(n_parts)])])
    if not keep_rounds:
        remove_tree(round_dir(work, rnd + 1), so)
    sizes = [p.stats.bytes_out if p.stats else 0 for p in partials]
    partials += notify(split_task.__name__, [_partial(r) for r in run(split_task.__name__, [
        SplitWork(g, work, n_parts, n_shards, per, clusters_dir, sizes, so) for g in range(n_groups)])])
    if not keep_rounds:
        remove_tree(join(cc_dir(work), "assign"), so)
    return {**merge_partials(partials), "rounds": rnd + 1}


# ------------------------------------------------------------------------------- reference

def components_in_memory(edge_files: Sequence[str], n_shards: int, clusters_dir: str,
                         storage_options: StorageOptions = None) -> dict[str, Any]:
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
