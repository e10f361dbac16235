"""Dedup at scale on simulated band keys: band grouping (tasks.dedup.band_components) and the
distributed connected components (winnow.components), every task in a fresh forked child,
so the peak RSS of the largest single task is measured per phase. At sizes up to
--baseline-max, ``components_in_memory`` (scipy over every edge in one task: what one
process holding every duplicated document costs) runs on the same component files, and its
cluster files and summary must equal the distributed ones.

    python benchmarks/scale_dedup.py [--sizes 1000000,10000000,50000000] [--workers 2]
                                     [--baseline-max 10000000] [--s3-requests]
                                     [--partition-docs 1000000] [--cc-part-edges 1600000]
                                     [--group-docs 2000000]

Simulated corpus (a choice, documented here and in the output):

* 30% of documents are in duplicate clusters; cluster sizes follow a discrete power law,
  P(s) ~ s^-2.5 on 2..5000 (85% of clusters have 2-5 documents, mean 4.7, a tail into the
  thousands: web-crawl duplicate counts are heavy-tailed power laws). The cap keeps the
  largest component, which one star-centre task must hold, independent of N.
* Each cluster is a copy tree: member j > 0 derives from the original (p = 0.5) or from a
  uniformly chosen earlier member. 20% of members are exact copies of their parent (all 14
  band keys and the exact-text key equal); the others share their parent's key in each band
  with p = 0.3 (a MinHash band of 8 rows matches with J^8 = 0.3 at Jaccard ~0.86), so a
  cluster connects only through several bands and its band groups form sub-trees.
* Clusters are scattered over the corpus by an affine permutation of positions, so
  duplicates sit in different shards; shards hold 1M documents.

Layout and task sizes (the code's, with benchmark-sized parameters):

* Signatures (simulated, setup): one task per group of consecutive shards of
  ``dedup.group_docs`` documents (``winnow.resume.group_by_rows``), writing per band ONE file
  ``bands/band=BB/group=GGGGG.parquet`` with one row group per key range (``key % R``) through
  ``write_partitioned``, exactly as ``signatures_group`` does (no full signatures: the
  benchmark does not verify, ``verify_threshold: null``).
* Band grouping: one task per (band, key range), ``R = n_ranges(cfg, N)``. The default
  ``partition_docs`` (20M) gives one range per band below 20M documents, so a band task would
  grow with N over the sizes measured here; ``--partition-docs 1000000`` (the default of this
  benchmark) keeps ~1M keys per band task whatever N is, as the defaults do above 20M.
* Components: ``n_parts = cc_parts(cfg, edges)``, edges = member -> root edges written by
  the band tasks (about 1.5 per document here). ``--cc-part-edges 1600000`` (default here;
  10M in the config) gives one partition per ~1M documents, the scaling measured before the
  layout change (N / 1M), so a component task holds ~0.85M distinct directed edges whatever
  N is. Pass ``--partition-docs 20000000 --cc-part-edges 10000000`` for the config defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import REPO, machine, markdown_table

from winnow.resume import ShardRef, group_by_rows
from winnow.stage import Work
from winnow.storage import StorageOptions, filesystem, write_table_atomic
from winnow.tasks.dedup.bands import band_components
from winnow.tasks.dedup.components import RunRound, components_in_memory, connected_components
from winnow.tasks.dedup.config import DedupConfig, band_tasks, cc_parts, n_partitions, n_ranges
from winnow.tasks.dedup.labels import mix64
from winnow.tasks.dedup.layout import KEY_SCHEMA, component_path, doc_ids, group_path
from winnow.tasks.dedup.shuffle import write_partitioned

BANDS = 14
ALPHA, S_MAX, DUP_SHARE, P_BAND, P_EXACT, P_TO_ORIGINAL = 2.5, 5000, 0.30, 0.3, 0.2, 0.5
SHARD_ROWS = 1_000_000
BENCH_PARTITION_DOCS = 1_000_000
BENCH_CC_PART_EDGES = 1_600_000
LAYOUT = "groups-v2"  # results of the older layout (a file per shard, band and range) are dropped
RESULTS = REPO / "benchmarks" / "results" / "scale_dedup.json"


# ------------------------------------------------------------------------------ simulation

def _h(a: np.ndarray, b: np.ndarray | int, c: int, salt: int) -> np.ndarray:
    """Deterministic 64-bit hash of (a, b, c): every document's keys are computed in its own
    group's task, with no shared state."""
    with np.errstate(over="ignore"):
        x = mix64(np.asarray(a, dtype=np.uint64) + np.uint64(salt))
        return mix64(mix64(x ^ np.asarray(b, dtype=np.uint64)) ^ np.uint64(c))


def _u01(x: np.ndarray) -> np.ndarray:
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def cluster_sizes(n_docs: int, seed: int = 0) -> np.ndarray:
    """Power-law cluster sizes until 30% of the corpus is covered."""
    s = np.arange(2, S_MAX + 1)
    p = s.astype(np.float64) ** -ALPHA
    p /= p.sum()
    target = round(DUP_SHARE * n_docs)
    draws = np.random.default_rng(seed).choice(s, size=int(target / float((p * s).sum()) * 1.1) + 16, p=p)
    total = np.cumsum(draws)
    k = int(np.searchsorted(total, target))
    sizes = draws[: k + 1].copy()
    sizes[-1] -= total[k] - target
    return sizes if sizes[-1] >= 2 else sizes[:-1]


def _parent(c: np.ndarray, j: np.ndarray) -> np.ndarray:
    to_original = _u01(_h(c, j, 1, 11)) < P_TO_ORIGINAL
    return np.where(to_original, 0, np.floor(_u01(_h(c, j, 0, 11)) * j)).astype(np.uint64)


def _copies_parent(c: np.ndarray, j: np.ndarray, band: int) -> np.ndarray:
    exact = (j > 0) & (_u01(_h(c, j, 2, 13)) < P_EXACT)
    if band == BANDS:  # the exact-text key
        return exact
    return exact | ((j > 0) & (_u01(_h(c, j, band, 17)) < P_BAND))


def member_keys(c: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Band keys of cluster members: walk up the copy tree while the key is inherited."""
    out = np.empty((len(c), BANDS + 1), dtype=np.uint64)
    for band in range(BANDS + 1):
        cur = j.copy()
        while True:
            up = _copies_parent(c, cur, band)
            if not up.any():
                break
            cur[up] = _parent(c[up], cur[up])
        out[:, band] = _h(c, cur, band, 23)
    return out


def _affine(n: int) -> tuple[int, int, int]:
    a = int(n * 0.6180339887) | 1
    while math.gcd(a, n) != 1:
        a += 2
    return a, pow(a, -1, n), 12345 % n


def shard_keys(n_docs: int, shard: int, shard_rows: int) -> tuple[np.ndarray, np.ndarray, int]:
    """What ``shard_signatures`` returns for one simulated shard: band keys (documents x
    (bands + exact)) and ids, plus how many of its documents were planted in clusters."""
    sizes = cluster_sizes(n_docs)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    _, a_inv, b = _affine(n_docs)
    pos = np.arange(shard * shard_rows, min(n_docs, (shard + 1) * shard_rows), dtype=np.int64)
    virtual = (((pos - b) % n_docs).astype(np.uint64) * np.uint64(a_inv) % np.uint64(n_docs)).astype(np.int64)
    keys = np.empty((len(pos), BANDS + 1), dtype=np.uint64)
    dup = virtual < starts[-1]
    c = np.searchsorted(starts, virtual[dup], side="right") - 1
    keys[dup] = member_keys(c.astype(np.uint64), (virtual[dup] - starts[c]).astype(np.uint64))
    single = virtual[~dup].astype(np.uint64)
    keys[~dup] = np.stack([_h(single, 0, band, 29) for band in range(BANDS + 1)], axis=1)
    return keys, doc_ids(shard, pos - shard * shard_rows), int(dup.sum())


def generate_group(n_docs: int, group: int, shards: list[int], work: str, ranges: int,
                   shard_rows: int = SHARD_ROWS, storage_options: StorageOptions = None) -> dict[str, Any]:
    """One signature task's band-key files, written as ``tasks.dedup.signatures_group`` writes
    them: per band one file ``group_path(work, band, group)``, row group r = the keys with
    ``key % ranges == r``. Returns the files' sizes, which band tasks are given."""
    parts = [shard_keys(n_docs, s, shard_rows) for s in shards]
    keys = np.concatenate([p[0] for p in parts])
    ids = np.concatenate([p[1] for p in parts])
    in_clusters = sum(p[2] for p in parts)
    del parts
    sizes = []
    for band in range(BANDS + 1):
        k = keys[:, band]
        sizes.append(write_partitioned(group_path(work, band, group), KEY_SCHEMA,
                                       [({"key": k, "doc": ids}, (k % np.uint64(ranges)).astype(np.int64))],
                                       ranges, storage_options))
    return {"documents": len(ids), "in_clusters": in_clusters, "sizes": sizes}


def shard_groups_of(n_docs: int, group_docs: int, shard_rows: int = SHARD_ROWS) -> list[list[int]]:
    """The signature groups the flow forms (``group_by_rows``) over shards of ``shard_rows``."""
    n_shards = math.ceil(n_docs / shard_rows)
    refs = [ShardRef(path="", key="", rows=min(shard_rows, n_docs - s * shard_rows)) for s in range(n_shards)]
    return group_by_rows(refs, group_docs)


# ------------------------------------------------------------------------------ measured tasks

def _status_mb(field: str) -> float:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measured(job: tuple[Callable[..., Any], dict[str, Any]]) -> tuple[Any, float, float, float, float]:
    """Run one task in this (fresh, forked) child. Its peak RSS is VmHWM, reset at the start
    (clear_refs 5) so that it is this task's peak, not the parent's history; the RSS at the
    start (what the child shares with the parent) is returned too."""
    fn, kwargs = job
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    start, cpu = _status_mb("VmRSS"), _cpu_s()
    t0 = time.perf_counter()
    result = fn(**kwargs)
    return result, _status_mb("VmHWM"), start, time.perf_counter() - t0, _cpu_s() - cpu


def _noop() -> None:
    return None


def warm_up() -> None:
    """Import what the first Parquet read imports (pyarrow pulls in pandas), once in the parent:
    children fork from it warm, as tasks in a long-lived worker process run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "warm.parquet")
        write_table_atomic(pa.table({"key": np.arange(3, dtype=np.uint64), "doc": np.arange(3, dtype=np.uint64)},
                                    schema=KEY_SCHEMA), path)
        pq.read_table(path)
        pq.ParquetFile(path).read_row_group(0)


class Phases:
    """Runs each task in its own forked child, ``workers`` at a time, and keeps per phase the
    wall time, summed task time, task count and the largest task's peak RSS."""

    def __init__(self, workers: int) -> None:
        warm_up()
        self.workers = workers
        self.ctx = mp.get_context("fork")
        self.phases: dict[str, dict[str, float]] = {}

    def run(self, phase: str, fn: Callable[..., Any], kwargs_list: list[dict[str, Any]]) -> list[Any]:
        t0 = time.perf_counter()
        with self.ctx.Pool(self.workers, maxtasksperchild=1) as pool:
            out = pool.map(_measured, [(fn, kw) for kw in kwargs_list], chunksize=1)
        p = self.phases.setdefault(phase, {"wall_s": 0.0, "task_s": 0.0, "cpu_s": 0.0, "tasks": 0, "peak_rss_mb": 0.0,
                                           "peak_over_start_mb": 0.0, "start_rss_mb": 0.0})
        p["wall_s"] += time.perf_counter() - t0
        p["task_s"] += sum(o[3] for o in out)
        p["cpu_s"] += sum(o[4] for o in out)
        p["tasks"] += len(out)
        p["peak_rss_mb"] = max(p["peak_rss_mb"], max((o[1] for o in out), default=0.0))
        p["peak_over_start_mb"] = max(p["peak_over_start_mb"], max((o[1] - o[2] for o in out), default=0.0))
        p["start_rss_mb"] = max(p["start_rss_mb"], max((o[2] for o in out), default=0.0))
        return [o[0] for o in out]

    def cc_runner(self) -> RunRound:
        names = {"partition_edges": "cc partition", "large_star_task": "cc large-star",
                 "small_star_task": "cc small-star", "assign_task": "cc assign", "split_task": "cc split"}
        return lambda phase, items: self.run(names[phase], _run_item, [{"item": item} for item in items])


def _run_item(item: Work[Any]) -> Any:
    return item()


def du_gb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / 1e9


def count_files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def bench_config(partition_docs: int, cc_part_edges: int, group_docs: int) -> DedupConfig:
    """The dedup settings of a run: buckets only (no full signatures are simulated)."""
    cfg = DedupConfig.model_validate({"partitions": "auto", "partition_docs": partition_docs,
                                      "cc_part_edges": cc_part_edges, "group_docs": group_docs,
                                      "verify_threshold": None})
    if n_partitions(cfg) != BANDS + 1:
        raise ValueError(f"the simulation writes {BANDS} bands + the exact key; the config has {n_partitions(cfg)}")
    return cfg


# ------------------------------------------------------------------------------ one size

def run_size(n_docs: int, root: Path, workers: int, baseline: bool, cfg: DedupConfig) -> dict[str, Any]:
    n_shards = math.ceil(n_docs / SHARD_ROWS)
    groups = shard_groups_of(n_docs, cfg.group_docs)
    ranges = n_ranges(cfg, n_docs)
    work = root / f"n={n_docs}"
    shutil.rmtree(work, ignore_errors=True)
    phases = Phases(workers)
    phases.run("idle child (baseline)", _noop, [{}])
    t0 = time.perf_counter()
    gen = phases.run("signatures (simulated setup)", generate_group, [
        {"n_docs": n_docs, "group": g, "shards": shards, "work": str(work), "ranges": ranges}
        for g, shards in enumerate(groups)])
    t_gen = time.perf_counter() - t0
    disk_bands = du_gb(work)
    band_files = count_files(work / "bands")
    units = band_tasks(cfg, ranges)
    t0 = time.perf_counter()
    bands = phases.run("band groups", band_components, [
        {"band": b, "part": p, "n_groups": len(groups), "ranges": ranges, "work": str(work), "cfg": cfg,
         "sizes": [r["sizes"][b] for r in gen]} for b, p in units])
    t_band = time.perf_counter() - t0
    paths = [component_path(str(work), b, p) for b, p in units]
    edges = sum(r["grouped"] for r in bands)
    n_parts = cc_parts(cfg, edges)
    disk_peak = [du_gb(work)]
    round_log: list[dict[str, Any]] = []

    def on_round(phase: str, results: list[Any]) -> None:
        disk_peak.append(du_gb(work))
        stats = [getattr(r, "stats", r) for r in results]
        round_log.append({"phase": phase, "entries_in": sum(s.entries_in for s in stats),
                          "changed": sum(s.changed for s in stats),
                          "max_entries_in_task": max(s.entries_in for s in stats)})

    t0 = time.perf_counter()
    summary = connected_components(paths, str(work), n_parts, n_shards, phases.cc_runner(), on_round=on_round)
    t_cc = time.perf_counter() - t0
    cc = {k: int(v["tasks"]) for k, v in phases.phases.items() if k.startswith("cc ")}
    result: dict[str, Any] = {
        "layout": LAYOUT, "documents": n_docs, "shards": n_shards, "groups": len(groups),
        "dedup.partition_docs": cfg.partition_docs, "dedup.cc_part_edges": cfg.cc_part_edges,
        "dedup.group_docs": cfg.group_docs, "key_ranges": ranges, "band_tasks": len(units), "n_parts": n_parts,
        "in_clusters_planted": sum(g["in_clusters"] for g in gen), "component_edges": edges,
        "unique_edges": round_log[1]["entries_in"] // 2, "rounds": summary["rounds"],
        "max_edges_in_cc_task": max(r["max_entries_in_task"] for r in round_log),
        "max_keys_in_band_task": max(r["keys"] for r in bands),
        "summary": summary,
        "largest_cluster": max(summary["cluster_size_histogram"], default=0),
        "generate_s": t_gen, "band_s": t_band, "cc_s": t_cc, "dedup_s": t_band + t_cc,
        "band_files": band_files, "component_files": count_files(work / "components"),
        # every cc task writes a done-marker and, but split, one data file; split writes a
        # cluster file per shard; plus the driver's params marker
        "cc_files_written": 2 * sum(n for k, n in cc.items() if k != "cc split") + cc.get("cc split", 0)
                            + n_shards + 1,
        "disk_bands_gb": disk_bands, "disk_peak_gb": max(disk_peak), "phases": phases.phases, "round_log": round_log,
    }
    if baseline:
        result["baseline"] = run_baseline(paths, work, n_shards, workers, summary)
    shutil.rmtree(work, ignore_errors=True)
    return result


def run_baseline(paths: list[str], work: Path, n_shards: int, workers: int,
                 distributed: dict[str, Any]) -> dict[str, Any]:
    """``components_in_memory`` on the same component files, in one task (scipy over every
    edge: the task that holds every duplicated document); cluster files and summary compared
    with the distributed ones."""
    phases = Phases(workers)
    mem = work / "clusters-in-memory"
    t0 = time.perf_counter()
    summary = phases.run("in-memory components (one task)", components_in_memory, [
        {"edge_files": paths, "n_shards": n_shards, "clusters_dir": str(mem)}])[0]
    seconds = time.perf_counter() - t0
    equal = all(pq.read_table(work / "clusters" / f"part-{s:05d}.parquet").equals(
        pq.read_table(mem / f"part-{s:05d}.parquet")) for s in range(n_shards))
    return {"seconds": seconds, "phases": phases.phases, "clusters_equal": equal,
            "summary_equal": {k: v for k, v in distributed.items() if k != "rounds"} == summary,
            "peak_rss_mb": phases.phases["in-memory components (one task)"]["peak_rss_mb"]}


# ------------------------------------------------------------------------------ S3 requests

S3_DOCS, S3_SHARD_ROWS, S3_RANGES = 200_000, 50_000, 2
REQUESTS = ("GetObject", "PutObject", "HeadObject", "ListObjectsV2", "CopyObject", "DeleteObjects")


def s3_requests(parts: list[int]) -> dict[str, Any]:
    """Requests on a local S3 (moto), counted at the botocore client, on one simulated corpus
    (200k documents in 4 shards, one signature group per shard, 2 key ranges): per band task
    (reads row group r of each group file: no HEAD, the sizes are passed on), and per
    large/small round of the components as a function of n_parts."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="cc-bench")
    so = {"client_kwargs": {"endpoint_url": endpoint}, "key": "testing", "secret": "testing"}
    work = "s3://cc-bench/dedup"
    cfg = bench_config(BENCH_PARTITION_DOCS, BENCH_CC_PART_EDGES, S3_SHARD_ROWS)
    rows = []
    try:
        fs, _ = filesystem(work, so)
        fs.connect()
        counts: Counter[str] = Counter()
        fs.s3.meta.events.register("before-call.s3", lambda model, **_: counts.update([model.name]))
        groups = shard_groups_of(S3_DOCS, cfg.group_docs, S3_SHARD_ROWS)
        counts.clear()
        gen = [generate_group(S3_DOCS, g, shards, work, S3_RANGES, S3_SHARD_ROWS, so) for g, shards in enumerate(groups)]
        signatures = {k: counts.get(k, 0) / len(groups) for k in REQUESTS}
        units = band_tasks(cfg, S3_RANGES)
        counts.clear()
        for b, p in units:
            band_components(b, p, len(groups), S3_RANGES, work, cfg, so, [r["sizes"][b] for r in gen])
        band = {k: counts.get(k, 0) / len(units) for k in REQUESTS}
        paths = [component_path(work, b, p) for b, p in units]
        for n_parts in parts:
            per_round: list[dict[str, int]] = []

            def on_round(phase: str, results: list[Any], per_round: list[dict[str, int]] = per_round) -> None:
                if phase in ("large_star_task", "small_star_task"):
                    per_round.append(dict(counts))
                counts.clear()

            counts.clear()
            summary = connected_components(paths, f"{work}/cc-{n_parts}", n_parts, len(groups), storage_options=so,
                                           on_round=on_round)
            later = per_round[1:] or per_round  # round 0 reads from the partition step's producers
            mean = {k: sum(r.get(k, 0) for r in later) / len(later) for k in REQUESTS}
            rows.append({"n_parts": n_parts, "rounds": summary["rounds"],
                         **{k: round(v, 1) for k, v in mean.items()}, "total per round": round(sum(mean.values()), 1)})
    finally:
        server.stop()
    return {"documents": S3_DOCS, "groups": len(groups), "key_ranges": S3_RANGES,
            "per_signature_task": signatures, "per_band_task": band, "cc_per_round": rows}


# ------------------------------------------------------------------------------ capacity model

def capacity(n_docs: int, cfg: DedupConfig, edges_per_doc: float, gets_per_band_file: float) -> dict[str, Any]:
    """Files and tasks of the band phases for a corpus of ``n_docs`` (signature groups of
    ``group_docs``: shards much smaller than a group), from the code's own functions; the
    components' n_parts from the edges per document measured here (a corpus property)."""
    groups = max(1, math.ceil(n_docs / cfg.group_docs))
    ranges = n_ranges(cfg, n_docs)
    tasks = len(band_tasks(cfg, ranges))
    n_parts = cc_parts(cfg, round(edges_per_doc * n_docs))
    return {"documents": n_docs, "signature groups": groups, "key ranges": ranges,
            "band files": n_partitions(cfg) * groups, "band tasks": tasks, "component files": tasks,
            "band GETs": round(gets_per_band_file * tasks * groups),
            "keys per band task": math.ceil(n_docs / ranges), "cc n_parts": n_parts,
            "cc GETs per round": 2 * n_parts * n_parts}


# ------------------------------------------------------------------------------ report

DEDUP_PHASES = ("band groups", "cc partition", "cc large-star", "cc small-star", "cc assign", "cc split")


def largest_task(r: dict[str, Any]) -> float:
    """Peak RSS of the largest single task of the dedup (band grouping and components)."""
    return max(r["phases"][p]["peak_rss_mb"] for p in DEDUP_PHASES if p in r["phases"])


def dedup_cpu(r: dict[str, Any]) -> float:
    """CPU seconds of all dedup tasks (less sensitive than wall time to a shared machine)."""
    return sum(r["phases"][p]["cpu_s"] for p in DEDUP_PHASES if p in r["phases"])


def settings_of(r: dict[str, Any]) -> tuple[int, int, int]:
    return r["dedup.partition_docs"], r["dedup.cc_part_edges"], r["dedup.group_docs"]


def table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        ph = r["phases"]

        def rss(name: str, phases: dict[str, dict[str, float]] = ph) -> str:
            return f"{phases[name]['peak_rss_mb']:,.0f}" if name in phases else "-"

        def sec(name: str, phases: dict[str, dict[str, float]] = ph) -> str:
            return f"{phases[name]['wall_s']:,.1f}" if name in phases else "-"

        rows.append({
            "documents": f"{r['documents']:,}",
            "partition_docs / cc_part_edges": f"{r['dedup.partition_docs']:,} / {r['dedup.cc_part_edges']:,}",
            "shards / groups / key ranges / n_parts": f"{r['shards']} / {r['groups']} / {r['key_ranges']} / {r['n_parts']}",
            "in clusters": f"{r['summary']['documents_in_clusters']:,}", "edges (unique)":
                f"{r['component_edges']:,} ({r['unique_edges']:,})", "rounds": r["rounds"],
            "dedup s (band + cc)": f"{r['dedup_s']:,.0f} ({r['band_s']:,.0f} + {r['cc_s']:,.0f})",
            "s per 1M docs": f"{r['dedup_s'] / r['documents'] * 1e6:,.1f}",
            "task CPU s (band + cc)": f"{dedup_cpu(r):,.0f} ({ph['band groups']['cpu_s']:,.0f} + "
                                      f"{dedup_cpu(r) - ph['band groups']['cpu_s']:,.0f})",
            "band: s / peak MB": f"{sec('band groups')} / {rss('band groups')}",
            "partition": f"{sec('cc partition')} / {rss('cc partition')}",
            "large-star": f"{sec('cc large-star')} / {rss('cc large-star')}",
            "small-star": f"{sec('cc small-star')} / {rss('cc small-star')}",
            "assign": f"{sec('cc assign')} / {rss('cc assign')}",
            "split": f"{sec('cc split')} / {rss('cc split')}",
            "largest task MB": f"{largest_task(r):,.0f}",
            "idle child MB": rss("idle child (baseline)"),
            "files: band / component / cc": f"{r['band_files']:,} / {r['component_files']:,} / {r['cc_files_written']:,}",
            "disk peak GB": f"{r['disk_peak_gb']:.1f}",
        })
    return markdown_table(rows)


def ratios(done: list[dict[str, Any]]) -> str:
    """Each size against the smallest of the same settings: RSS should stay, time follow N."""
    rows = []
    for r in done:
        first = min((x for x in done if settings_of(x) == settings_of(r)), key=lambda x: x["documents"])
        if first is r:
            continue
        row: dict[str, object] = {
            "documents": f"{r['documents']:,}", "against": f"{first['documents']:,}",
            "N ratio": f"{r['documents'] / first['documents']:.0f}x",
            "dedup wall ratio": f"{r['dedup_s'] / first['dedup_s']:.1f}x",
            "dedup task CPU ratio": f"{dedup_cpu(r) / dedup_cpu(first):.1f}x",
            "largest task RSS": f"{largest_task(r) / largest_task(first):.2f}x"}
        for name in DEDUP_PHASES:
            if name in r["phases"] and name in first["phases"]:
                row[f"{name} RSS"] = f"{r['phases'][name]['peak_rss_mb'] / first['phases'][name]['peak_rss_mb']:.2f}x"
        rows.append(row)
    return markdown_table(rows) if rows else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000,50000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline-max", type=int, default=10_000_000,
                    help="also run components_in_memory (and compare clusters) up to this size")
    ap.add_argument("--partition-docs", type=int, default=BENCH_PARTITION_DOCS,
                    help="dedup.partition_docs (config default 20M)")
    ap.add_argument("--cc-part-edges", type=int, default=BENCH_CC_PART_EDGES,
                    help="dedup.cc_part_edges (config default 10M)")
    ap.add_argument("--group-docs", type=int, default=DedupConfig().group_docs, help="dedup.group_docs")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp folder under /tmp)")
    ap.add_argument("--s3-requests", action="store_true", help="also count S3 requests (moto)")
    ap.add_argument("--one-size", type=int, default=None, help=argparse.SUPPRESS)  # internal: one size, JSON out
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cfg = bench_config(args.partition_docs, args.cc_part_edges, args.group_docs)
    root = Path(args.work or tempfile.mkdtemp(prefix="scale_dedup-"))
    if args.one_size is not None:
        r = run_size(args.one_size, root, args.workers, args.one_size <= args.baseline_max, cfg)
        Path(args.result).write_text(json.dumps(r, default=str))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"{machine()}; {args.workers} task processes; scratch {root}", flush=True)
    out: dict[str, Any] = {"machine": machine(), "workers": args.workers, "sizes": []}
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
        out.update({k: v for k, v in previous.items() if k in ("s3_requests", "capacity")})
        out["sizes"] = [r for r in previous.get("sizes", []) if r.get("layout") == LAYOUT]
    mine = (cfg.partition_docs, cfg.cc_part_edges, cfg.group_docs)
    for n in sizes:
        # Each size in a fresh process: the forked task children start from the same idle parent.
        t0 = time.perf_counter()
        result_file = root / f"result-{n}.json"
        subprocess.run([sys.executable, __file__, "--one-size", str(n), "--result", str(result_file),
                        "--workers", str(args.workers), "--baseline-max", str(args.baseline_max), "--work", str(root),
                        "--partition-docs", str(cfg.partition_docs), "--cc-part-edges", str(cfg.cc_part_edges),
                        "--group-docs", str(cfg.group_docs)], check=True)
        r = json.loads(result_file.read_text())
        result_file.unlink()
        out["sizes"] = sorted([*[x for x in out["sizes"] if (x["documents"], settings_of(x)) != (n, mine)], r],
                              key=lambda x: (settings_of(x), x["documents"]))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=1, default=str))
        base = r.get("baseline")
        print(f"N={n:,}: {time.perf_counter() - t0:,.0f} s in all (signature simulation {r['generate_s']:,.0f} s), "
              f"{r['rounds']} rounds, {r['summary']['clusters']:,} clusters, largest {r['largest_cluster']:,}, "
              f"disk peak {r['disk_peak_gb']:.1f} GB"
              + (f"; in-memory components: {base['seconds']:,.0f} s, {base['peak_rss_mb']:,.0f} MB, clusters equal: "
                 f"{base['clusters_equal']}, summary equal: {base['summary_equal']}" if base else ""), flush=True)
    done = out["sizes"]
    print("\nPer phase: wall seconds (2 task processes) / peak RSS of the largest single task, MB "
          "(VmHWM of a forked child, which starts at the idle child's size)\n")
    print(table(done))
    if text := ratios(done):
        print("\nRatios against the smallest size of the same settings:\n")
        print(text)
    baselines = [r for r in done if r.get("baseline")]
    if baselines:
        print("\ncomponents_in_memory on the same component files (one task holds every duplicated document):\n")
        print(markdown_table([{
            "documents": f"{r['documents']:,}", "seconds": f"{r['baseline']['seconds']:,.1f}",
            "task peak RSS MB": f"{r['baseline']['peak_rss_mb']:,.0f}",
            "distributed largest task MB": f"{largest_task(r):,.0f}",
            "distributed cc s": f"{r['cc_s']:,.1f}",
            "clusters equal to distributed": r["baseline"]["clusters_equal"],
            "summary equal": r["baseline"]["summary_equal"],
        } for r in baselines]))
    if args.s3_requests:
        out["s3_requests"] = s3_requests([1, 2, 4, 8, 16])
        RESULTS.write_text(json.dumps(out, indent=1, default=str))
    if s3 := out.get("s3_requests"):
        print(f"\nS3 requests (moto, counted at the client; {s3['documents']:,} documents, {s3['groups']} groups, "
              f"{s3['key_ranges']} key ranges): per signature task {s3['per_signature_task']}, "
              f"per band task {s3['per_band_task']}\n")
        print(markdown_table(s3["cc_per_round"]))
    if done:
        edges_per_doc = max(r["component_edges"] / r["documents"] for r in done)
        gets = s3["per_band_task"]["GetObject"] / s3["groups"] if s3 else 2.0
        defaults = DedupConfig()
        out["capacity"] = {"config": {"partition_docs": defaults.partition_docs, "group_docs": defaults.group_docs,
                                      "cc_part_edges": defaults.cc_part_edges},
                           "edges_per_doc": edges_per_doc, "gets_per_band_file": gets,
                           "rows": [capacity(n, defaults, edges_per_doc, gets)
                                    for n in (10**6, 10**7, 5 * 10**7, 10**9, 3 * 10**9, 10**10)]}
        RESULTS.write_text(json.dumps(out, indent=1, default=str))
        print(f"\nCapacity model, config defaults (group_docs {defaults.group_docs:,}, partition_docs "
              f"{defaults.partition_docs:,}, cc_part_edges {defaults.cc_part_edges:,}; {edges_per_doc:.2f} edges per "
              f"document and {gets:.1f} GETs per band file as measured here):\n")
        print(markdown_table([{k: f"{v:,}" for k, v in row.items()} for row in out["capacity"]["rows"]]))
    if args.work is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
