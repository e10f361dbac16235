"""Scaling of the full pipeline and the cost of one Prefect task.

1. Speedup: the full curate flow (ingest -> LID -> quality -> dedup -> pack) on the same
   replicated WARC input (see e2e.py) with 1 and with 2 worker processes, on a real Prefect server.
2. Per-task overhead: 1,000 small JSONL shards (5 real documents each) curated by the flow with one
   worker, against the same per-shard function called in a plain loop (no Prefect). The difference
   divided by the number of shards is what scheduling one task costs; from it and the measured
   seconds per MB of WARC, the overhead share at each shard size.

    python benchmarks/scaling.py [--target-mb 60] [--shards 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, markdown_table
from e2e import build_input, start_prefect_server

CHILD = """
import json, sys, time
from winnow.flows.curate import curate
from winnow.inputs import list_inputs
from winnow.shards import shard_name
from winnow.storage import join
from winnow.tasks.pipeline import WinnowConfig
from winnow.tasks.shard import ShardJob, ShardPlan, process_shard

src, out = sys.argv[1], sys.argv[2]
cfg = WinnowConfig.model_validate({{"input": [src], "output": out + "/flow", "runner": {{"kind": "threads",
    "workers": 1, "retries": 0}}, "lid": {{"keep": ["en"]}}, "shard_size_mb": 0}})  # one task per file
files = list_inputs(cfg.input).files
plan = ShardPlan.from_config(cfg)
process_shard(ShardJob(0, (files[0],), out + "/warmup.parquet"), plan)  # imports, models, spaCy: paid once by both
t0 = time.perf_counter()
for k, f in enumerate(files):
    process_shard(ShardJob(k, (f,), join(out, "direct", shard_name(k))), plan)
direct = time.perf_counter() - t0
tasks = len(cfg.runner.batches(len(files)))
t0 = time.perf_counter()
summary = curate(cfg)
flow = time.perf_counter() - t0
print(json.dumps({{"direct": direct, "flow": flow, "shards": len(files), "tasks": tasks, "rows": summary["rows"]}}))
"""


def run_full(src: Path, out: Path, workers: int, api_url: str, shard_mb: float) -> dict:
    cfg = out.parent / f"scaling-{workers}.json"
    cfg.write_text(json.dumps({
        "input": [str(src)], "output": str(out), "shard_size_mb": shard_mb,
        "runner": {"kind": "processes", "workers": workers, "retries": 0},
        "lid": {"keep": ["en"], "threshold": 0.65}, "dedup": {"enabled": True}, "pack": {"enabled": True},
    }))
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "winnow"), "run", str(cfg)], cwd=REPO, check=True,
                   env={**os.environ, "PREFECT_API_URL": api_url}, stdout=subprocess.DEVNULL,
                   stderr=open(out.parent / f"scaling-{workers}.log", "w"))
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "shards": summary["shards"], "docs": summary["stages"]["dedup"]["docs_out"],
            "sequences": summary["packed"]["sequences"]}


def small_shards(src_docs: Path, dest: Path, n: int, per_shard: int = 5) -> None:
    import pyarrow.parquet as pq

    texts = [t for p in sorted(src_docs.glob("*.parquet")) for t in pq.read_table(p, columns=["text"]).column("text").to_pylist()]
    dest.mkdir(parents=True)
    for k in range(n):
        with open(dest / f"small-{k:05d}.jsonl", "w") as f:
            for j in range(per_shard):
                f.write(json.dumps({"id": f"{k}-{j}", "text": texts[(k * per_shard + j) % len(texts)]}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-mb", type=float, default=60)
    ap.add_argument("--shard-mb", type=float, default=4, help="shard_size_mb of the speedup runs")
    ap.add_argument("--shards", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="winnow-scaling-"))
    try:
        files, n_html = build_input(tmp / "warc", args.target_mb)
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"input: {len(files)} WARC files, {mb:.0f} MB, {n_html:,} HTML pages ({machine()})")
        server, url = start_prefect_server(tmp / "prefect-home")
        try:
            one = run_full(tmp / "warc", tmp / "out-1", 1, url, args.shard_mb)
            two = run_full(tmp / "warc", tmp / "out-2", 2, url, args.shard_mb)
            assert (one["docs"], one["sequences"]) == (two["docs"], two["sequences"]), (one, two)
            print("\nFull pipeline (processes runner, shard_size_mb "
                  f"{args.shard_mb:g}: {one['shards']} shards), same output with 1 and 2 workers:\n")
            print(markdown_table([
                {"workers": w, "wall s": f"{r['wall']:.1f}", "MB/s WARC": f"{mb / r['wall']:.2f}",
                 "docs out": f"{r['docs']:,}", "sequences": f"{r['sequences']:,}",
                 "speedup": f"{one['wall'] / r['wall']:.2f}x"} for w, r in ((1, one), (2, two))]))
            small_shards(tmp / "out-1" / "deduped", tmp / "small", args.shards)
            child = tmp / "overhead.py"
            child.write_text(CHILD.format())
            res = subprocess.run([sys.executable, str(child), str(tmp / "small"), str(tmp / "out-small")], cwd=REPO,
                                 env={**os.environ, "PREFECT_API_URL": url},
                                 capture_output=True, text=True, check=True)
            o = json.loads(res.stdout.strip().splitlines()[-1])
        finally:
            server.terminate()
        # One shard per task here (1,000 shards <= runner.max_tasks): the difference is per task.
        per_task = (o["flow"] - o["direct"]) / o["tasks"]
        print(f"\nPer-task overhead on {o['shards']:,} small shards in {o['tasks']:,} tasks (threads, 1 worker, real server): "
              f"flow {o['flow']:.1f} s vs plain loop {o['direct']:.1f} s -> {1000 * per_task:.1f} ms per task")
        s_per_mb = one["wall"] / mb  # one worker, whole pipeline
        print(f"\nOverhead share by shard size (one worker processes {1 / s_per_mb:.2f} MB of WARC per second "
              "through the whole pipeline):\n")
        print(markdown_table([{"shard MB": f"{s:g}", "work per shard s": f"{s * s_per_mb:.2f}",
                               "overhead": f"{100 * per_task / (per_task + s * s_per_mb):.2f}%"}
                              for s in (0.1, 0.5, 1, 4, 16, 64, 1000)]))
        print("\n(the default shard_size_mb is 1: files smaller than 1 MB are grouped)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
