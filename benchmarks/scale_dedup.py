"""Dedup at scale on simulated band keys: band grouping (tasks.dedup.band_components) and the
distributed connected components (winnow.components), every task in a fresh forked child,
so the peak RSS of the largest single task is measured per phase. At sizes up to
--baseline-max, today's pairwise merge tree (merge_components + split_clusters) runs on the
same component files and its cluster files must be equal.

    python benchmarks/scale_dedup.py [--sizes 1000000,10000000,50000000] [--workers 2]
                                     [--baseline-max 1000000] [--s3-requests]

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
  duplicates sit in different shards; shards hold 1M documents; key ranges per band
  (``dedup.partitions``) = N / 1M and component partitions ``n_parts`` = N / 500k, so a band
  task holds ~1M keys and a component task ~0.4M edges whatever N is.
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

from tasks.dedup import (
    KEY_SCHEMA,
    DedupConfig,
    band_components,
    band_path,
    band_tasks,
    component_path,
    merge_components,
    merge_pair,
    split_clusters,
)
from winnow.components import NEW, connected_components, mix64
from winnow.shardio import filesystem, write_table_atomic

BANDS = 14
ALPHA, S_MAX, DUP_SHARE, P_BAND, P_EXACT, P_TO_ORIGINAL = 2.5, 5000, 0.30, 0.3, 0.2, 0.5
SHARD_ROWS = 1_000_000
KEYS_PER_BAND_TASK = 1_000_000
DOCS_PER_CC_PART = 500_000
RESULTS = REPO / "benchmarks" / "results" / "scale_dedup.json"


# ------------------------------------------------------------------------------ simulation

def _h(a: np.ndarray, b: np.ndarray | int, c: int, salt: int) -> np.ndarray:
    """Deterministic 64-bit hash of (a, b, c): every document's keys are computed in its own
    shard's task, with no shared state."""
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


def generate_shard(n_docs: int, shard: int, work: str, partitions: int) -> dict[str, int]:
    """One shard's band files, in the layout tasks.dedup.signatures_shard writes:
    bands/band=BB/range=RRRR/part-SSSSS.parquet, sorted by (key, doc)."""
    sizes = cluster_sizes(n_docs)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    _, a_inv, b = _affine(n_docs)
    pos = np.arange(shard * SHARD_ROWS, min(n_docs, (shard + 1) * SHARD_ROWS), dtype=np.int64)
    virtual = (((pos - b) % n_docs).astype(np.uint64) * np.uint64(a_inv) % np.uint64(n_docs)).astype(np.int64)
    keys = np.empty((len(pos), BANDS + 1), dtype=np.uint64)
    dup = virtual < starts[-1]
    c = np.searchsorted(starts, virtual[dup], side="right") - 1
    keys[dup] = member_keys(c.astype(np.uint64), (virtual[dup] - starts[c]).astype(np.uint64))
    single = virtual[~dup].astype(np.uint64)
    keys[~dup] = np.stack([_h(single, 0, band, 29) for band in range(BANDS + 1)], axis=1)
    ids = NEW | (np.uint64(shard) << np.uint64(32)) | (pos - shard * SHARD_ROWS).astype(np.uint64)
    for band in range(BANDS + 1):
        key_range = keys[:, band] % np.uint64(partitions)
        order = np.lexsort((ids, keys[:, band], key_range))
        k, d = keys[order, band], ids[order]
        bounds = np.searchsorted(key_range[order], np.arange(partitions + 1, dtype=np.uint64))
        for part in range(partitions):
            lo, hi = int(bounds[part]), int(bounds[part + 1])
            write_table_atomic(pa.table({"key": k[lo:hi], "doc": d[lo:hi]}, schema=KEY_SCHEMA),
                               band_path(work, band, part, shard))
    return {"documents": len(pos), "in_clusters": int(dup.sum())}


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

    def cc_runner(self) -> Callable[[Callable[..., Any], list[dict[str, Any]]], list[Any]]:
        names = {"partition_edges": "cc partition", "large_star_task": "cc large-star",
                 "small_star_task": "cc small-star", "assign_task": "cc assign", "split_task": "cc split"}
        return lambda fn, kws: self.run(names[fn.__name__], fn, kws)


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


# ------------------------------------------------------------------------------ one size

def run_size(n_docs: int, root: Path, workers: int, baseline: bool) -> dict[str, Any]:
    n_shards = math.ceil(n_docs / SHARD_ROWS)
    partitions = max(1, math.ceil(n_docs / KEYS_PER_BAND_TASK))
    n_parts = max(2, math.ceil(n_docs / DOCS_PER_CC_PART))
    work = root / f"n={n_docs}"
    shutil.rmtree(work, ignore_errors=True)
    phases = Phases(workers)
    phases.run("idle child (baseline)", _noop, [{}])
    t0 = time.perf_counter()
    gen = phases.run("generate (setup)", generate_shard, [
        {"n_docs": n_docs, "shard": s, "work": str(work), "partitions": partitions} for s in range(n_shards)])
    t_gen = time.perf_counter() - t0
    disk_bands = du_gb(work)
    cfg = DedupConfig.model_validate({"partitions": partitions, "verify_threshold": None})
    units = band_tasks(cfg)
    t0 = time.perf_counter()
    bands = phases.run("band groups", band_components, [
        {"band": b, "part": p, "n_shards": n_shards, "work": str(work), "cfg": cfg} for b, p in units])
    t_band = time.perf_counter() - t0
    paths = [component_path(str(work), b, p) for b, p in units]
    edges = sum(r["grouped"] for r in bands)
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
    cc_tasks = sum(int(v["tasks"]) for k, v in phases.phases.items() if k.startswith("cc "))
    result: dict[str, Any] = {
        "documents": n_docs, "shards": n_shards, "dedup.partitions": partitions, "n_parts": n_parts,
        "in_clusters_planted": sum(g["in_clusters"] for g in gen), "component_edges": edges,
        "unique_edges": round_log[1]["entries_in"] // 2, "rounds": summary["rounds"],
        "summary": summary,
        "largest_cluster": max(summary["cluster_size_histogram"], default=0),
        "histogram_head": {k: summary["cluster_size_histogram"][k] for k in sorted(summary["cluster_size_histogram"])[:6]},
        "generate_s": t_gen, "band_s": t_band, "cc_s": t_cc, "dedup_s": t_band + t_cc,
        # each cc task writes its data file and its done-marker; split also one file per shard
        "cc_files_written": 2 * cc_tasks + n_shards, "band_files": count_files(work / "bands"),
        "disk_bands_gb": disk_bands, "disk_peak_gb": max(disk_peak), "phases": phases.phases, "round_log": round_log,
    }
    if baseline:
        result["baseline"] = run_baseline(paths, work, n_shards, workers)
    shutil.rmtree(work, ignore_errors=True)
    return result


def run_baseline(paths: list[str], work: Path, n_shards: int, workers: int) -> dict[str, Any]:
    """Today's path on the same component files: pairwise merges (each a task), then the
    split of the final file in one task; cluster files compared with ours."""
    phases = Phases(workers)
    old = work / "old"
    t0 = time.perf_counter()

    def merge_round(pairs: list[list[str]], outs: list[str]) -> None:
        phases.run("merge (pairwise tree)", merge_pair, [{"pair": p, "out": o} for p, o in zip(pairs, outs)])

    final = merge_components(paths, str(old), None, merge_round)
    summary = phases.run("split (one task)", split_clusters, [{"final": final, "n_shards": n_shards,
                                                                "work": str(old)}])[0]
    seconds = time.perf_counter() - t0
    equal = all(pq.read_table(work / "clusters" / f"part-{s:05d}.parquet").equals(
        pq.read_table(old / "clusters" / f"part-{s:05d}.parquet")) for s in range(n_shards))
    return {"seconds": seconds, "phases": phases.phases, "clusters_equal": equal, "summary": summary}


# ------------------------------------------------------------------------------ S3 requests

def s3_requests(parts: list[int]) -> list[dict[str, Any]]:
    """Requests per round on a local S3 (moto), counted at the botocore client, as a
    function of n_parts, on one simulated graph."""
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
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            generate_shard(200_000, 0, tmp, 1)
            cfg = DedupConfig.model_validate({"partitions": 1, "verify_threshold": None})
            paths = []
            for b, p in band_tasks(cfg):
                band_components(b, p, 1, tmp, cfg)
                paths.append(f"s3://cc-bench/components/{b}-{p}.parquet")
                write_table_atomic(pq.read_table(component_path(tmp, b, p)), paths[-1], so)
        fs, _ = filesystem(paths[0], so)
        fs.connect()
        counts: Counter[str] = Counter()
        fs.s3.meta.events.register("before-call.s3", lambda model, **_: counts.update([model.name]))
        for n_parts in parts:
            per_round: list[dict[str, int]] = []

            def on_round(phase: str, results: list[Any], per_round: list[dict[str, int]] = per_round) -> None:
                if phase in ("large_star_task", "small_star_task"):
                    per_round.append(dict(counts))
                counts.clear()

            counts.clear()
            summary = connected_components(paths, f"s3://cc-bench/work-{n_parts}", n_parts, 1, storage_options=so,
                                           on_round=on_round)
            later = per_round[1:] or per_round  # round 0 reads from the partition step's producers
            mean = {k: sum(r.get(k, 0) for r in later) / len(later)
                    for k in ("GetObject", "PutObject", "HeadObject", "ListObjectsV2", "CopyObject", "DeleteObjects")}
            rows.append({"n_parts": n_parts, "rounds": summary["rounds"],
                         **{k: round(v, 1) for k, v in mean.items()}, "total per round": round(sum(mean.values()), 1)})
    finally:
        server.stop()
    return rows


# ------------------------------------------------------------------------------ report

DEDUP_PHASES = ("band groups", "cc partition", "cc large-star", "cc small-star", "cc assign", "cc split")


def largest_task(r: dict[str, Any]) -> float:
    """Peak RSS of the largest single task of the dedup (band grouping and components)."""
    return max(r["phases"][p]["peak_rss_mb"] for p in DEDUP_PHASES if p in r["phases"])


def dedup_cpu(r: dict[str, Any]) -> float:
    """CPU seconds of all dedup tasks (less sensitive than wall time to a shared machine)."""
    return sum(r["phases"][p]["cpu_s"] for p in DEDUP_PHASES if p in r["phases"])


def table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        ph = r["phases"]

        def rss(name: str, phases: dict[str, dict[str, float]] = ph) -> str:
            return f"{phases[name]['peak_rss_mb']:,.0f}" if name in phases else "-"

        def sec(name: str, phases: dict[str, dict[str, float]] = ph) -> str:
            return f"{phases[name]['wall_s']:,.1f}" if name in phases else "-"

        rows.append({
            "documents": f"{r['documents']:,}", "shards / key ranges / n_parts":
                f"{r['shards']} / {r['dedup.partitions']} / {r['n_parts']}",
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
            "cc files written": f"{r['cc_files_written']:,}",
            "disk peak GB": f"{r['disk_peak_gb']:.1f}",
        })
    return markdown_table(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000,50000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline-max", type=int, default=1_000_000,
                    help="also run today's merge tree (and compare clusters) up to this size")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp folder under /tmp)")
    ap.add_argument("--s3-requests", action="store_true", help="also count S3 requests per round (moto)")
    ap.add_argument("--one-size", type=int, default=None, help=argparse.SUPPRESS)  # internal: one size, JSON out
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.work or tempfile.mkdtemp(prefix="scale_dedup-"))
    if args.one_size is not None:
        r = run_size(args.one_size, root, args.workers, baseline=args.one_size <= args.baseline_max)
        Path(args.result).write_text(json.dumps(r, default=str))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{machine()}; {args.workers} task processes; scratch {root}", flush=True)
    out: dict[str, Any] = {"machine": machine(), "workers": args.workers, "sizes": []}
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
        out["sizes"] = [r for r in previous.get("sizes", []) if r["documents"] not in sizes]
    for n in sizes:
        # Each size in a fresh process: the forked task children start from the same idle parent.
        t0 = time.perf_counter()
        result_file = root / f"result-{n}.json"
        subprocess.run([sys.executable, __file__, "--one-size", str(n), "--result", str(result_file),
                        "--workers", str(args.workers), "--baseline-max", str(args.baseline_max), "--work", str(root)],
                       check=True)
        r = json.loads(result_file.read_text())
        out["sizes"] = sorted([*[x for x in out["sizes"] if x["documents"] != n], r], key=lambda x: x["documents"])
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=1, default=str))
        base = r.get("baseline")
        print(f"N={n:,}: {time.perf_counter() - t0:,.0f} s in all (generation {r['generate_s']:,.0f} s), "
              f"{r['rounds']} rounds, {r['summary']['clusters']:,} clusters, largest {r['largest_cluster']:,}, "
              f"disk peak {r['disk_peak_gb']:.1f} GB"
              + (f"; today's merge tree: {base['seconds']:,.0f} s, largest task "
                 f"{max(p['peak_rss_mb'] for p in base['phases'].values()):,.0f} MB, clusters equal: "
                 f"{base['clusters_equal']}" if base else ""), flush=True)
    done = out["sizes"]
    print("\nPer phase: wall seconds (2 task processes) / peak RSS of the largest single task, MB "
          "(VmHWM of a forked child, which starts at the idle child's size)\n")
    print(table(done))
    if len(done) > 1:
        first = done[0]
        print(f"\nRatios against N={first['documents']:,}: ")
        rows = []
        for r in done[1:]:
            row: dict[str, object] = {"documents": f"{r['documents']:,}", "N ratio": f"{r['documents'] / first['documents']:.0f}x",
                                      "dedup wall ratio": f"{r['dedup_s'] / first['dedup_s']:.1f}x",
                                      "dedup task CPU ratio": f"{dedup_cpu(r) / dedup_cpu(first):.1f}x",
                                      "largest task RSS": f"{largest_task(r) / largest_task(first):.2f}x"}
            for name in DEDUP_PHASES:
                if name in r["phases"] and name in first["phases"]:
                    row[f"{name} peak RSS"] = f"{r['phases'][name]['peak_rss_mb'] / first['phases'][name]['peak_rss_mb']:.2f}x"
            rows.append(row)
        print(markdown_table(rows))
    baselines = [r for r in done if r.get("baseline")]
    if baselines:
        print("\nToday's pairwise merge tree on the same component files (largest single task):\n")
        print(markdown_table([{
            "documents": f"{r['documents']:,}", "seconds": f"{r['baseline']['seconds']:,.0f}",
            "merge largest task MB": f"{r['baseline']['phases']['merge (pairwise tree)']['peak_rss_mb']:,.0f}",
            "split task MB": f"{r['baseline']['phases']['split (one task)']['peak_rss_mb']:,.0f}",
            "clusters equal to distributed": r["baseline"]["clusters_equal"],
            "summary equal": {k: v for k, v in r["summary"].items() if k != "rounds"} == r["baseline"]["summary"],
        } for r in baselines]))
    if args.s3_requests:
        rows = s3_requests([1, 2, 4, 8, 16])
        out["s3_requests_per_round"] = rows
        RESULTS.write_text(json.dumps(out, indent=1, default=str))
        print("\nS3 requests per large/small round (moto, counted at the client; 200k documents):\n")
        print(markdown_table(rows))
    if args.work is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
