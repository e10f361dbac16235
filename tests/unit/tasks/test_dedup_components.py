"""Distributed connected components (winnow/tasks/dedup/components.py) against scipy and against
today's in-memory reference (components_in_memory, scipy): same components, same
representative (smallest id, index documents first), same cluster files and summary."""

from __future__ import annotations

import collections
import gzip
import math
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from winnow.document import Document
from winnow.storage import filesystem, write_table_atomic
from winnow.tasks.dedup.bands import band_components
from winnow.tasks.dedup.components import (
    ConvergenceError,
    components_in_memory,
    connected_components,
    round_cap,
)
from winnow.tasks.dedup.config import DedupConfig, band_tasks, n_ranges
from winnow.tasks.dedup.labels import mix64, partition_of, unmix64
from winnow.tasks.dedup.layout import CLUSTER_SCHEMA, COMPONENT_SCHEMA, NEW, component_path
from winnow.tasks.dedup.rounds import ComponentsError, RoundStats
from winnow.tasks.dedup.signatures import signatures_group

TEXT = Path(__file__).resolve().parents[2] / "data" / "text"
N_SHARDS = 3


def new_id(shard: int, row: int) -> int:
    return int(NEW) | shard << 32 | row


def index_id(index: int, old: int) -> int:
    """An earlier run's document as band_components sees it: k << 56 | its old id."""
    return index << 56 | old


def write_components(folder: Path, bands: list[list[tuple[int, int]]]) -> list[str]:
    """One component file per band of (doc, root) edges, as band_components writes them."""
    paths = []
    for b, edges in enumerate(bands):
        doc = np.array([d for d, _ in edges], dtype=np.uint64)
        root = np.array([r for _, r in edges], dtype=np.uint64)
        path = str(folder / "components" / f"band={b:02d}-range=0000.parquet")
        write_table_atomic(pa.table({"doc": doc, "root": root}, schema=COMPONENT_SCHEMA), path)
        paths.append(path)
    return paths


def scipy_reference(edges: list[tuple[int, int]]) -> dict[int, int]:
    """node -> smallest id of its component, computed here with scipy."""
    if not edges:
        return {}
    flat = np.array(edges, dtype=np.uint64)
    nodes, inverse = np.unique(flat.ravel(), return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(flat)), (inverse[:, 0], inverse[:, 1])), shape=(len(nodes), len(nodes)))
    _, labels = scipy_components(graph, directed=False)
    smallest: dict[int, int] = {}
    for node, label in zip(nodes.tolist(), labels.tolist()):
        smallest[label] = min(smallest.get(label, node), node)
    return {node: smallest[label] for node, label in zip(nodes.tolist(), labels.tolist())}


def read_clusters(folder: str, n_shards: int) -> dict[int, tuple[int, int]]:
    """doc id -> (root, size) from clusters/part-SSSSS.parquet."""
    out = {}
    for s in range(n_shards):
        t = pq.read_table(Path(folder) / f"part-{s:05d}.parquet")
        assert t.schema.equals(CLUSTER_SCHEMA)
        for row, root, size in zip(*(t.column(c).to_pylist() for c in ("row", "root", "size"))):
            out[new_id(s, row)] = (root, size)
    return out


def run(paths: list[str], work: Path, n_parts: int, n_shards: int = N_SHARDS, **kw: Any) -> dict[str, Any]:
    summary = connected_components(paths, str(work), n_parts, n_shards, **kw)
    n_nodes = len({int(x) for p in paths for c in ("doc", "root") for x in pq.read_table(p).column(c).to_pylist()})
    assert summary["rounds"] <= round_cap(n_nodes)
    return summary


def check_against_scipy(bands: list[list[tuple[int, int]]], work: Path, n_parts: int) -> dict[str, Any]:
    summary = run(write_components(work, bands), work, n_parts)
    edges = [e for band in bands for e in band if e[0] != e[1]]
    ref = scipy_reference(edges)
    sizes = collections.Counter(ref.values())
    expected = {d: (r, sizes[r]) for d, r in ref.items() if d & int(NEW) and (d >> 32) & 0xFFFFFF < N_SHARDS}
    assert read_clusters(str(work / "clusters"), N_SHARDS) == expected
    assert summary["clusters"] == len(sizes)
    assert summary["documents_in_clusters"] == len(expected)
    assert summary["removed"] == sum(1 for d, (r, _) in expected.items() if d != r)
    assert summary["cluster_size_histogram"] == dict(collections.Counter(sizes.values()))
    return summary


def test_labels_are_a_bijection_and_partitions_are_even():
    rng = np.random.default_rng(0)
    ids = np.concatenate([rng.integers(0, 2**63, 50_000, dtype=np.uint64), np.arange(1000, dtype=np.uint64),
                          np.array([0, 2**64 - 1], dtype=np.uint64)])
    assert np.array_equal(unmix64(mix64(ids)), ids)
    assert len(np.unique(mix64(np.arange(100_000, dtype=np.uint64)))) == 100_000
    labels = np.sort(mix64(np.arange(200_000, dtype=np.uint64)))
    for n_parts in (1, 2, 7, 64):
        counts = np.bincount(partition_of(labels, n_parts), minlength=n_parts)
        assert counts.max() / counts.mean() < 1.05
        # Star centres have the smallest labels: they must not all land in low partitions.
        low = np.bincount(partition_of(labels[:20_000], n_parts), minlength=n_parts)
        assert low.max() / low.mean() < 1.1


ID = st.integers(0, 40)


@settings(max_examples=30, deadline=None)
@given(edges=st.lists(st.tuples(ID, ID), max_size=80), index_nodes=st.sets(ID, max_size=6),
       order=st.permutations(list(range(41))), n_parts=st.sampled_from([1, 2, 7]), bands=st.integers(1, 4))
def test_random_graphs_match_scipy(edges, index_nodes, order, n_parts, bands):
    # Node k gets an id whose order is unrelated to k; some are earlier runs' index documents.
    ident = {k: index_id(k % 3, order[k]) if k in index_nodes else new_id(order[k] % N_SHARDS, order[k])
             for k in range(41)}
    pairs = [(ident[a], ident[b]) for a, b in edges if a != b]
    split = [pairs[b::bands] for b in range(bands)]
    with tempfile.TemporaryDirectory() as tmp:
        check_against_scipy(split, Path(tmp), n_parts)


@pytest.mark.parametrize("order", ["ascending", "descending", "random", "zigzag"])
def test_long_paths_converge_within_the_cap(tmp_path, order):
    n = 3000
    ranks = {"ascending": np.arange(n), "descending": np.arange(n)[::-1],
             "random": np.random.default_rng(1).permutation(n),
             "zigzag": np.ravel(np.column_stack([np.arange(n // 2), np.arange(n - 1, n // 2 - 1, -1)]))}[order]
    ids = [new_id(int(r) % N_SHARDS, int(r)) for r in ranks]
    summary = check_against_scipy([[(ids[k + 1], ids[k]) for k in range(n - 1)]], tmp_path, 2)
    # Paths are the slow case for label propagation (n rounds); stars take about 2 log2 n.
    assert summary["rounds"] <= 3 * math.log2(n) < round_cap(n)
    assert summary["cluster_size_histogram"] == {n: 1}


@pytest.mark.parametrize("n_parts", [1, 2, 7])
def test_stars_and_joined_stars(tmp_path, n_parts):
    centre_low = [new_id(0, 0)] + [new_id(s, r) for s in range(N_SHARDS) for r in range(1, 200)]
    centre_high = [new_id(2, 5000)] + [new_id(s, 1000 + r) for s in range(N_SHARDS) for r in range(100)]
    a = [(leaf, centre_low[0]) for leaf in centre_low[1:]]
    b = [(centre_high[0], leaf) for leaf in centre_high[1:]]  # the centre is the largest id
    joined = [(new_id(1, 7000 + k), new_id(1, 8000)) for k in range(50)] + \
             [(new_id(1, 9000 + k), new_id(1, 9500)) for k in range(50)] + [(new_id(1, 9500), new_id(1, 7000))]
    summary = check_against_scipy([a, b, joined], tmp_path, n_parts)
    assert summary["cluster_size_histogram"] == {len(centre_low): 1, len(centre_high): 1, 102: 1}


def realistic_bands(rng: random.Random, n_clusters: int, with_index: bool) -> list[list[tuple[int, int]]]:
    """Clusters of zeta(2.5) sizes (most of 2-5, a tail to hundreds), 14 bands + exact: in each
    band a member shares its parent's key with probability 0.3 (an exact copy always), so a
    cluster connects only through several bands. Edges as band_components writes them."""
    sizes = np.arange(2, 400)
    weights = sizes ** -2.5
    bands: list[list[tuple[int, int]]] = [[] for _ in range(15)]
    used: set[int] = set()
    for c in range(n_clusters):
        size = rng.choices(sizes.tolist(), weights.tolist())[0]
        members: list[int] = []
        while len(members) < size:
            doc = new_id(rng.randrange(N_SHARDS), rng.randrange(1 << 20))
            if doc not in used:
                used.add(doc)
                members.append(doc)
        if with_index and c % 5 == 0:
            members[0] = index_id(c % 2, c)  # an already published document is the original
        parent = [0] + [0 if rng.random() < 0.5 else rng.randrange(j) for j in range(1, size)]
        exact = [False] + [rng.random() < 0.2 for _ in range(1, size)]
        for b in range(15):
            group = list(range(size))  # union-find of "shares the key in band b"
            for j in range(1, size):
                if exact[j] or (b < 14 and rng.random() < 0.3):
                    group[j] = group[parent[j]]
            keys = collections.defaultdict(list)
            for j in range(size):
                keys[group[j]].append(members[j])
            for docs in keys.values():
                root = min(docs)
                bands[b] += [(d, root) for d in docs if d != root]
    return bands


@pytest.mark.parametrize("n_parts", [1, 2, 7])
def test_realistic_clusters_with_index_documents_equal_the_in_memory_reference(tmp_path, n_parts):
    bands = realistic_bands(random.Random(n_parts), 300, with_index=True)
    # Self-loops (band_components never writes one) are no edge in either implementation: a
    # document seen only in one is in no cluster.
    bands[0] += [(new_id(0, 999_999), new_id(0, 999_999)), (bands[1][0][0], bands[1][0][0])]
    paths = write_components(tmp_path, bands)
    old = components_in_memory(paths, N_SHARDS, str(tmp_path / "old" / "clusters"))
    new = run(paths, tmp_path / "new", n_parts)
    assert {k: v for k, v in new.items() if k != "rounds"} == old
    for s in range(N_SHARDS):
        name = f"part-{s:05d}.parquet"
        new_table = pq.read_table(tmp_path / "new" / "clusters" / name)
        assert new_table.equals(pq.read_table(tmp_path / "old" / "clusters" / name))
    # Index documents are representatives of their clusters but in no shard file.
    members = read_clusters(str(tmp_path / "new" / "clusters"), N_SHARDS)
    assert any(root < int(NEW) for root, _ in members.values())
    assert old["documents_in_clusters"] == len(members) > 0


def paragraphs(name: str) -> list[str]:
    with gzip.open(TEXT / name, "rt", encoding="utf-8") as fh:
        text = fh.read()
    text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    return [p for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 80]


def test_real_text_pipeline_files_equal_the_in_memory_reference(tmp_path):
    """Band files from real text (planted near-duplicates across shards) -> band_components ->
    both ways of joining the bands: byte-for-byte equal cluster tables."""
    rng = random.Random(3)
    base = paragraphs("austen-persuasion.txt.gz")[:150] + paragraphs("chesterton-thursday.txt.gz")[:150]
    shards: list[list[Document]] = [[], [], []]
    for i, text in enumerate(base):
        shards[i % 3].append(Document(id=f"o{i}", text=text))
        for copy in range(i % 4):  # 0-3 near copies, one word changed each
            w = text.split()
            w[rng.randrange(len(w))] = "lorem"
            shards[(i + copy + 1) % 3].append(Document(id=f"n{i}-{copy}", text=" ".join(w)))
    cfg = DedupConfig.model_validate({"partitions": 2})
    work = str(tmp_path / "dedup")
    ranges = n_ranges(cfg, sum(map(len, shards)))
    for k, docs in enumerate(shards):
        signatures_group([(k, docs)], k, work, cfg, ranges)
    for band, part in band_tasks(cfg, ranges):
        band_components(band, part, len(shards), ranges, work, cfg)
    paths = [component_path(work, b, p) for b, p in band_tasks(cfg, ranges)]
    old = components_in_memory(paths, len(shards), str(Path(work) / "clusters"))
    new = connected_components(paths, work, 4, len(shards), clusters_dir=str(tmp_path / "new"))
    assert {k: v for k, v in new.items() if k != "rounds"} == old
    assert old["removed"] > 200
    for s in range(len(shards)):
        name = f"part-{s:05d}.parquet"
        assert pq.read_table(tmp_path / "new" / name).equals(pq.read_table(Path(work) / "clusters" / name))


def test_rerun_skips_finished_tasks_and_resumes_after_a_crash(tmp_path):
    bands = realistic_bands(random.Random(9), 200, with_index=False)
    paths = write_components(tmp_path, bands)
    reference = run(paths, tmp_path / "ref", 3)
    calls = {"n": 0}

    def crashing(phase, items):
        out = []
        for item in items:
            if calls["n"] == 17:  # in the middle of a round
                raise RuntimeError("worker lost")
            calls["n"] += 1
            out.append(item())
        return out

    with pytest.raises(RuntimeError, match="worker lost"):
        run(paths, tmp_path / "w", 3, run_round=crashing)
    seen: list[tuple[str, bool]] = []

    def record(phase, results):
        seen.extend((phase, (r.stats if not isinstance(r, RoundStats) else r).skipped) for r in results)

    resumed = run(paths, tmp_path / "w", 3, on_round=record)
    assert resumed == reference
    assert sum(skipped for _, skipped in seen) == 17  # every task finished before the crash, no more
    assert read_clusters(str(tmp_path / "w" / "clusters"), N_SHARDS) == \
        read_clusters(str(tmp_path / "ref" / "clusters"), N_SHARDS)
    seen.clear()
    assert run(paths, tmp_path / "w", 3, on_round=record) == reference  # idempotent: all skipped
    assert seen and all(skipped for _, skipped in seen)
    # Other partition counts are another computation: the scratch folder starts over.
    seen.clear()
    assert {k: v for k, v in run(paths, tmp_path / "w", 2, on_round=record).items() if k != "rounds"} == \
        {k: v for k, v in reference.items() if k != "rounds"}
    assert not any(skipped for _, skipped in seen)


def test_round_cap_is_enforced(tmp_path):
    ids = [new_id(0, r) for r in range(500)]
    paths = write_components(tmp_path, [[(ids[k + 1], ids[k]) for k in range(499)]])
    with pytest.raises(ConvergenceError, match="after 4 rounds"):
        connected_components(paths, str(tmp_path), 2, 1, max_rounds=4)
    assert round_cap(2) == 8 and round_cap(10**6) == 2 * 21**2 and round_cap(50 * 10**6) == 2 * 27**2


def test_empty_graph_writes_empty_cluster_files(tmp_path):
    paths = write_components(tmp_path, [[], []])
    summary = run(paths, tmp_path, 3)
    assert summary == {"clusters": 0, "documents_in_clusters": 0, "removed": 0, "cluster_size_histogram": {},
                       "rounds": 2}
    assert read_clusters(str(tmp_path / "clusters"), N_SHARDS) == {}


def test_bad_component_file_is_named(tmp_path):
    path = tmp_path / "components" / "band=00-range=0000.parquet"
    write_table_atomic(pa.table({"doc": np.arange(3, dtype=np.uint64)}), str(path))
    with pytest.raises(ComponentsError, match=r"band=00-range=0000.parquet: no 'root' column"):
        connected_components([str(path)], str(tmp_path), 2, 1)


def test_on_s3_same_clusters_and_few_requests_per_round(tmp_path, s3_server):
    bands = realistic_bands(random.Random(5), 60, with_index=True)
    local = write_components(tmp_path, bands)
    remote = []
    for p in local:
        remote.append(f"s3://winnow-test/cc/{Path(p).name}")
        write_table_atomic(pq.read_table(p), remote[-1], s3_server)
    fs, _ = filesystem(remote[0], s3_server)
    fs.connect()
    requests: collections.Counter[str] = collections.Counter()
    fs.s3.meta.events.register("before-call.s3", lambda model, **_: requests.update([model.name]))
    per_round = []

    def record(phase, results):
        per_round.append((phase, dict(requests)))
        requests.clear()

    n_parts = 3
    summary = connected_components(remote, "s3://winnow-test/work", n_parts, N_SHARDS, storage_options=s3_server,
                                   on_round=record)
    assert summary == run(local, tmp_path / "local", n_parts)
    for phase, counts in per_round[2:-2]:  # rounds after the first, all with n_parts producers
        # One file per task and its marker; two ranged GETs (footer, row group) per pair.
        assert counts.get("PutObject") == 2 * n_parts, (phase, counts)
        assert counts.get("GetObject", 0) <= 2 * n_parts * n_parts, (phase, counts)
        assert counts.get("HeadObject", 0) <= 3 * n_parts + 1, (phase, counts)
    clusters = fs.cat_file("winnow-test/work/clusters/part-00001.parquet")
    local_table = pq.read_table(tmp_path / "local" / "clusters" / "part-00001.parquet")
    assert pq.read_table(pa.BufferReader(clusters)).equals(local_table)
