"""Ingest throughput: winnow (fastwarc + resiliparse + cleanup -> Parquet) vs datatrove
(WarcReader + Trafilatura -> ParquetWriter) on the same WARC files, same number of workers.

Input: every WARC in ../shared/data/warc (WET/WAT excluded), copied --copies times so that
start-up costs do not dominate. Each engine runs in its own process; wall time, documents
out and peak RSS (of that process tree) are measured by this parent process.

    python benchmarks/ingest.py [--copies 4] [--workers 1]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, markdown_table, shared_data

# datatrove's WarcReader (warcio) raises on this file's brotli body, and with one worker its
# executor then abandons every task after it; it is left out so both engines do the same work.
DATATROVE_CRASHER = "transfer-compression-brotli.warc.gz"


def build_input(copies: int, dest: Path) -> list[Path]:
    src = sorted(p for p in (shared_data() / "warc").glob("*.warc*")
                 if not p.name.endswith((".wet.gz", ".wat.gz")) and p.name != DATATROVE_CRASHER)
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(copies):
        for p in src:
            target = dest / f"c{k}-{p.name}"
            shutil.copyfile(p, target)
            files.append(target)
    return files


def run_winnow(input_dir: str, out: str, workers: int) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    from winnow.inputs import list_inputs
    from winnow.shards import shard_name
    from winnow.storage import join
    from winnow.tasks.pipeline import WinnowConfig
    from winnow.tasks.shard import ShardJob, ShardPlan, process_shard

    # Ingest alone (WARC -> text -> Parquet), the same work as datatrove's pipeline here and what
    # the README's figure measures: the document stages after it are switched off. One shard per file.
    cfg = WinnowConfig.model_validate({"input": [input_dir], "output": out, "lid": {"enabled": False},
                                       "quality": {"enabled": False}})
    plan = ShardPlan.from_config(cfg)
    jobs = [ShardJob(k, (f,), join(out, "documents", shard_name(k)))
            for k, f in enumerate(list_inputs(cfg.input).files)]
    t0 = time.perf_counter()
    if workers == 1:
        results = [process_shard(j, plan) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(process_shard, jobs, [plan] * len(jobs)))
    wall = time.perf_counter() - t0
    return {"wall": wall, "docs": sum(r.ref.rows for r in results if r.ref is not None), "failed_files": 0}


def run_datatrove(input_dir: str, out: str, workers: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter

    n_files = len(glob.glob(os.path.join(input_dir, "*.warc*")))
    executor = LocalPipelineExecutor(
        pipeline=[
            WarcReader(input_dir, glob_pattern="*.warc*"),
            Trafilatura(favour_precision=True),
            ParquetWriter(os.path.join(out, "documents")),
        ],
        tasks=n_files,
        workers=workers,
        logging_dir=os.path.join(out, "logs"),
        skip_completed=False,
    )
    t0 = time.perf_counter()
    try:
        executor.run()
    except Exception as exc:  # noqa: BLE001 - report, count what was written
        print(f"datatrove run raised: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
    wall = time.perf_counter() - t0
    import pyarrow.parquet as pq

    docs = sum(pq.read_metadata(p).num_rows for p in glob.glob(os.path.join(out, "documents", "*.parquet")))
    completed = len(glob.glob(os.path.join(out, "logs", "completions", "*")))
    return {"wall": wall, "docs": docs, "failed_files": n_files - completed}


def child(engine: str, input_dir: str, out: str, workers: int) -> None:
    import logging

    logging.disable(logging.WARNING)
    import resource

    result = (run_winnow if engine == "winnow" else run_datatrove)(input_dir, out, workers)
    # Peak RSS of this process and of its worker processes (kB on Linux).
    result["peak_rss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print("RESULT " + json.dumps(result))


def measure(engine: str, input_dir: Path, out: Path, workers: int) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", engine, "--input", str(input_dir), "--out", str(out),
         "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    stdout, stderr = proc.communicate()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        sys.exit(f"{engine} run failed:\n{stderr[-3000:]}")
    result = json.loads(lines[-1][7:])
    result["stderr_tail"] = stderr[-300:]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--child")
    ap.add_argument("--input")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.input, args.out, args.workers)

    with tempfile.TemporaryDirectory(prefix="winnow-bench-") as tmp:
        files = build_input(args.copies, Path(tmp) / "warc")
        mb = sum(f.stat().st_size for f in files) / 1e6
        results = {}
        for engine in ("datatrove", "winnow"):
            results[engine] = measure(engine, Path(tmp) / "warc", Path(tmp) / f"out-{engine}", args.workers)
        rows = []
        for engine, r in results.items():
            rows.append({"engine": engine, "docs out": r["docs"], "wall s": f"{r['wall']:.1f}",
                         "docs/s": f"{r['docs'] / r['wall']:.1f}", "MB/s WARC": f"{mb / r['wall']:.2f}",
                         "files failed": r["failed_files"], "peak RSS MB": f"{r['peak_rss_mb']:.0f}"})
        ratio = (results["winnow"]["docs"] / results["winnow"]["wall"]) / (
            results["datatrove"]["docs"] / results["datatrove"]["wall"])
        print(f"\nIngest of {len(files)} WARC files ({mb:.1f} MB, {args.copies} copies of the shared WARCs), "
              f"{args.workers} worker(s); {machine()}\n")
        print(markdown_table(rows))
        print(f"\nwinnow docs/s / datatrove docs/s = {ratio:.1f}x "
              f"(documents out differ: different extractors; see benchmarks/extraction.py)")
        print(f"Left out: {DATATROVE_CRASHER}, on which datatrove's reader raises; winnow reads it "
              "(tests/unit/tasks/test_ingest.py::test_content_encoded_bodies_are_decoded).")
        if results["datatrove"]["failed_files"]:
            print(f"datatrove tasks that failed (their files' documents are missing): "
                  f"{results['datatrove']['failed_files']}; last error output:\n"
                  f"{results['datatrove']['stderr_tail']}")


if __name__ == "__main__":
    main()
