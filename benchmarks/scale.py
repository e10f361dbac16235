"""Scale-out figures (measured, not timed tests), after benchmarks/scale_dedup.py:

a. ``pack``: the pack stage's per-group work (``winnow.tasks.pack.pack_group``: tokenize, per-buffer
   best-fit, Parquet parts, done-marker; grouping by ``group_shards``/``documents_per_task``, then
   ``write_manifest``) on >= 1B tokens, 1 vs 2 worker processes. 1B tokens of text cannot be
   written to disk cheaply, so in the workers the two input steps of ``pack_group`` read
   synthetic documents instead: ``iter_documents`` yields documents whose lengths follow a
   log-normal fitted to the cl100k token counts of the pages extracted from ../shared/data/warc,
   and the tokenizer returns a list of that many distinct Python ints (the memory real tiktoken
   output takes). Everything after that is the stage's code and writes what it would write.
   Tokenization throughput is measured apart, on real text (../shared/data/text, tests/data/text).
b. ``prefect``: a flow mapping >= 20,000 trivial tasks through winnow's ``PrefectMapper``
   (threads runner) against a real Prefect server on PostgreSQL: wall time, overhead per task
   against a plain loop, and how long after the flow ends the server has recorded every task run
   (``/task_runs/count`` sampled each second); Prefect's default server settings, then the
   recommended ones (``RECOMMENDED_SERVER``, with the reason for each).
c. ``files``: 100,000 tiny JSONL input files: ``list_inputs`` + ``group_inputs`` time, tasks per
   phase (``RunnerConfig().batches``, bounded by ``runner.max_tasks``), then ``winnow run`` on them
   (threads runner, default stages: LID annotate-only + quality rules) with the task runs the
   Prefect API recorded: once with the default grouping (shard_size_mb 1), once with one shard
   per file (100,000 shards, which runner.max_tasks batches into 1,000 tasks).
d. ``dask``: the whole pipeline on a Dask cluster of a scheduler and two separately started
   workers (own working directory, TMPDIR and HOME each) that share nothing but a moto S3
   endpoint; input, output and block list on s3://. The output must equal a local threads run
   of the same config, and no worker may write outside its own TMPDIR (checked by listing the
   folders before/after, and with strace when it is installed).

    python benchmarks/scale.py [all|pack|prefect|files|dask] [--quick]
    python benchmarks/scale.py pack [--tokens 1e9] [--workers 1,2]
    python benchmarks/scale.py prefect [--tasks 20000] [--settings default,recommended]
    python benchmarks/scale.py files [--files 100000] [--skip-per-file-shards]
    python benchmarks/scale.py dask [--no-strace]

Each part prints markdown tables and replaces its own entry of benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from _common import REPO, machine, markdown_table, shared_data

from winnow.document import Document
from winnow.resume import ShardRef, work_key
from winnow.stats import StageStats
from winnow.tasks import pack as pack_stage
from winnow.tokenizer import Tokenizer, load_tokenizer

RESULTS = REPO / "benchmarks" / "results" / "scale.json"
BIN = Path(sys.executable).parent


def save_result(part: str, result: dict[str, Any]) -> None:
    """Replace this part's entry of scale.json (the other parts keep theirs)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[part] = {"measured": machine(), **result}
    RESULTS.write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(f"\n(wrote benchmarks/results/scale.json: {part})")


def vm_peak_mb() -> float:
    """Peak RSS of this process since the last reset_peak() (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a pool worker reports each task's own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def mem_available_mb() -> float:
    """MemAvailable of /proc/meminfo, MB (inf where there is none)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def fmt_s(seconds: float) -> str:
    """Seconds as the tables print them."""
    return f"{seconds:,.1f}"


# =============================================================================== a. pack

@dataclass(frozen=True)
class LengthModel:
    """Document lengths in tokens (EOS not included): log-normal, clipped to [1, max_tokens],
    drawn per shard from its own seeded stream, so any process regenerates any shard."""

    mu: float
    sigma: float
    max_tokens: int
    docs_per_shard: int
    seed: int = 0

    def shard(self, k: int) -> np.ndarray:
        x = np.random.default_rng([self.seed, k]).lognormal(self.mu, self.sigma, self.docs_per_shard)
        return np.clip(np.rint(x), 1, self.max_tokens).astype(np.int64)


def synthetic_documents(shards: list[ShardRef], model: LengthModel) -> Iterator[Document]:
    """What ``iter_documents`` yields for the synthetic shards: one document per length; its
    text only names it (shard, row, tokens) for the synthetic tokenizer."""
    for ref in shards:
        k = int(ref.path.rsplit("/", 1)[1])
        for row, n in enumerate(model.shard(k).tolist()):
            yield Document(id=f"{k}-{row}", text=f"{k} {row} {n}")


def synthetic_encode(texts: list[str]) -> list[list[int]]:
    """n distinct Python ints per document (values > 256, so not CPython's shared small ints):
    the memory real tokenizer output takes, 36 bytes per token in a list."""
    out = []
    for t in texts:
        k, row, n = map(int, t.split())
        base = 300 + (k * 7919 + row) % 50_000
        out.append(list(range(base, base + n)))
    return out


SYNTHETIC_TOKENIZER = Tokenizer("synthetic:distinct-ints", 400_000, 100_257, None, synthetic_encode,
                                lambda ids: "")


def _pack_worker_init(model: LengthModel) -> None:
    # The two input steps of pack_group (read the document shards, load the tokenizer) read the
    # synthetic documents instead; packing, writing, markers and records are the stage's code.
    pack_stage.iter_documents = lambda shards, storage_options=None: synthetic_documents(shards, model)
    pack_stage.check_pack = lambda cfg: SYNTHETIC_TOKENIZER


def _pack_group_task(item: dict[str, Any]) -> dict[str, Any]:
    """One pack task in a pool worker, with that task's own peak RSS and wall time."""
    reset_peak()
    base = vm_peak_mb()
    t0 = time.perf_counter()
    record = pack_stage.pack_group(**item)
    return {"record": record, "seconds": time.perf_counter() - t0, "peak_rss_mb": vm_peak_mb(),
            "rss_before_mb": base, "pid": os.getpid()}


def web_page_token_lengths(tok: Tokenizer) -> np.ndarray:
    """cl100k token counts (+ EOS) of the pages winnow's ingest extracts from the shared WARCs."""
    from winnow.tasks.ingest import IngestConfig, ingest_warc

    texts = []
    for p in sorted((shared_data() / "warc").glob("*.warc*")):
        if p.name.endswith((".wet.gz", ".wat.gz")):
            continue
        texts += [d.text for d in ingest_warc(str(p), IngestConfig(), StageStats())]
    return np.array([len(ids) + 1 for ids in tok.encode_batch(texts)])


def real_text_documents() -> dict[str, list[str]]:
    """Documents of about 4,000 characters (consecutive paragraphs) of every real text sample,
    by subset."""
    sources = {"gutenberg (en)": sorted((shared_data() / "text" / "gutenberg").glob("*.txt.gz")),
               "eltec (fr, de, es, it, pt, ...)": sorted((shared_data() / "text" / "eltec").glob("*.txt.gz")),
               "genesis (many scripts)": sorted((shared_data() / "text" / "genesis").glob("*.txt.gz")),
               "tests/data/text (en)": sorted((REPO / "tests" / "data" / "text").glob("*.txt.gz"))}
    out: dict[str, list[str]] = {}
    for name, paths in sources.items():
        docs: list[str] = []
        for path in paths:
            paras = [p for p in re.split(r"\n\s*\n", gzip.open(path, "rt", encoding="utf-8").read()) if p.strip()]
            cur: list[str] = []
            for p in paras:
                cur.append(p)
                if sum(map(len, cur)) >= 4000:
                    docs.append("\n\n".join(cur))
                    cur = []
            if cur:
                docs.append("\n\n".join(cur))
        if docs:
            out[name] = docs
    return out


def tokenization_throughput() -> list[dict[str, Any]]:
    """tokens/s of the project's tokenizer (pack.tokenizer default) on real text: one thread
    pinned to one core, and all cores (the stage's default, tokenize_threads: 0)."""
    subsets = real_text_documents()
    one = load_tokenizer(threads=1)
    every = load_tokenizer()
    cores = os.cpu_count() or 1
    rows = []
    saved = os.sched_getaffinity(0)
    for name, docs in [*subsets.items(), ("all of the above", [d for v in subsets.values() for d in v])]:
        chars = sum(map(len, docs))
        one.encode_batch(docs[:50])  # warm the BPE caches of both
        try:
            os.sched_setaffinity(0, {sorted(saved)[0]})
            t0 = time.perf_counter()
            n_tokens = sum(map(len, one.encode_batch(docs)))
            t_one = time.perf_counter() - t0
        finally:
            os.sched_setaffinity(0, saved)
        t0 = time.perf_counter()
        every.encode_batch(docs)
        t_all = time.perf_counter() - t0
        rows.append({"text": name, "documents": len(docs), "MB": round(chars / 1e6, 2), "tokens": n_tokens,
                     "chars/token": round(chars / n_tokens, 2), "tokens/s (1 core)": round(n_tokens / t_one),
                     f"tokens/s ({cores} cores)": round(n_tokens / t_all)})
    return rows


def file_digests(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.glob("train-*.parquet")):
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
        out[p.name] = h.hexdigest()
    return out


def cut_documents_fitting(folder: Path, model: LengthModel, L: int) -> tuple[int, int, int]:
    """(documents cut, of them <= L tokens with EOS, segments) read back from the written parts."""
    cut: set[str] = set()
    segments = 0
    for p in sorted(folder.glob("train-*.parquet")):
        t = pq.read_table(p, columns=["document_ids", "chunk_index"])
        ids = t.column("document_ids").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        parts = t.column("chunk_index").combine_chunks().flatten().to_numpy()
        segments += len(parts)
        cut.update(ids[parts > 0].tolist())
    lengths: dict[int, np.ndarray] = {}
    fitting = 0
    for doc in cut:
        k, row = map(int, doc.split("-"))
        if k not in lengths:
            lengths[k] = model.shard(k)
        fitting += int(lengths[k][row] + 1 <= L)
    return len(cut), fitting, segments


def run_pack_groups(refs: list[ShardRef], out: Path, cfg: pack_stage.PackConfig, model: LengthModel,
                    workers: int) -> dict[str, Any]:
    """The pack stage's map (one task per group) on a pool of ``workers`` processes, then its manifest."""
    shutil.rmtree(out, ignore_errors=True)
    key = work_key([r.key for r in refs], pack_stage.PackStage.settings(cfg))
    groups = pack_stage.group_shards(refs, cfg.documents_per_task)
    items = [{"group": g, "shards": [refs[k] for k in idx], "out_dir": str(out), "cfg": cfg, "key": key}
             for g, idx in enumerate(groups)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_pack_worker_init,
                             initargs=(model,)) as pool:
        tasks = list(pool.map(_pack_group_task, items))
    manifest = pack_stage.write_manifest([t["record"] for t in tasks], str(out), cfg, refs, key)
    wall = time.perf_counter() - t0
    return {"wall": wall, "tasks": tasks, "manifest": manifest}


def part_pack(args: argparse.Namespace) -> None:
    L = args.seq_len
    tok = load_tokenizer()
    print(f"\n## a. Pack on >= {args.tokens:,.0f} tokens ({machine()})\n")
    real = web_page_token_lengths(tok)
    logs = np.log(real)
    mu, sigma = float(logs.mean()), float(logs.std())
    model = LengthModel(mu, sigma, args.max_doc_tokens, args.docs_per_shard)
    mean = float(np.clip(np.rint(np.random.default_rng(1).lognormal(mu, sigma, 1_000_000)), 1,
                         args.max_doc_tokens).mean())
    n_shards = math.ceil(args.tokens / ((mean + 1) * args.docs_per_shard))
    refs = [ShardRef(f"synthetic://shards/{k}", f"synthetic-{k}", args.docs_per_shard) for k in range(n_shards)]
    lengths = [model.shard(k) for k in range(n_shards)]
    while sum(int(x.sum()) + len(x) for x in lengths) < args.tokens:  # EOS included, as the stage counts
        refs.append(ShardRef(f"synthetic://shards/{len(refs)}", f"synthetic-{len(refs)}", args.docs_per_shard))
        lengths.append(model.shard(len(lengths)))
    all_lengths = np.concatenate(lengths) + 1
    cfg = pack_stage.PackConfig(enabled=True, seq_len=L, **({"documents_per_task": args.documents_per_task}
                                                              if args.documents_per_task else {}))
    groups = pack_stage.group_shards(refs, cfg.documents_per_task)
    dist = {"fitted_to": f"{len(real):,} pages extracted from ../shared/data/warc (winnow ingest, default "
                         "extractor), cl100k tokens + EOS",
            "distribution": f"log-normal(mu={mu:.3f}, sigma={sigma:.3f}) of tokens, rounded, clipped to "
                            f"[1, {args.max_doc_tokens:,}], + EOS",
            "real_pages": {"median": float(np.median(real)), "mean": float(real.mean()),
                           "p99": float(np.percentile(real, 99)), "share_over_L": float((real > L).mean())},
            "synthetic": {"median": float(np.median(all_lengths)), "mean": float(all_lengths.mean()),
                          "p99": float(np.percentile(all_lengths, 99)), "max": int(all_lengths.max()),
                          "share_over_L": float((all_lengths > L).mean())}}
    print(markdown_table([
        {"lengths (tokens, EOS included)": name, "documents": f"{len(x):,}", "median": f"{np.median(x):,.0f}",
         "mean": f"{x.mean():,.0f}", "p99": f"{np.percentile(x, 99):,.0f}", "max": f"{x.max():,}",
         f"share > L={L}": f"{100 * (x > L).mean():.1f}%"}
        for name, x in (("real pages (shared WARCs)", real), ("synthetic corpus", all_lengths))]))
    print(f"\nSynthetic corpus: {dist['distribution']}; {len(all_lengths):,} documents, {int(all_lengths.sum()):,} "
          f"tokens in {len(refs):,} shards of {args.docs_per_shard:,} documents -> {len(groups)} pack tasks "
          f"(group_shards, documents_per_task {cfg.documents_per_task:,}; buffer_docs {cfg.buffer_docs:,}).\n")

    # A task holds a buffer's token lists as Python ints (~36 B per token) and their packed copy
    # (~8 B): refuse a run that would not fit beside what the machine is already using.
    per_task = min(cfg.buffer_docs, cfg.documents_per_task) * float(all_lengths.mean()) * 48 / 1e6
    available = mem_available_mb()
    if max(args.workers) * per_task > 0.9 * available and not args.force:
        sys.exit(f"pack: {max(args.workers)} workers x ~{per_task:,.0f} MB per task would not fit in the "
                 f"{available:,.0f} MB available; use --force, fewer --workers or --documents-per-task")
    runs: dict[int, dict[str, Any]] = {}
    digests: dict[int, dict[str, str]] = {}
    cut: dict[int, tuple[int, int, int]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="winnow-scale-pack-", dir=args.tmp))
    try:
        for w in args.workers:
            out = tmp / f"packed-{w}"
            runs[w] = run_pack_groups(refs, out, cfg, model, w)
            digests[w] = file_digests(out)
            cut[w] = cut_documents_fitting(out, model, L)
            m = runs[w]["manifest"]
            size = sum(p.stat().st_size for p in out.glob("train-*.parquet")) / 1e9
            print(f"{w} worker(s): {fmt_s(runs[w]['wall'])} s, {m['sequences']:,} sequences, {size:.2f} GB "
                  "of Parquet", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = args.workers[0]
    rows = []
    for w, r in runs.items():
        m = r["manifest"]
        over = (m["sequences"] - m["lower_bound_sequences"]) / m["lower_bound_sequences"]
        peaks = [t["peak_rss_mb"] for t in r["tasks"]]
        rows.append({"workers": w, "wall s": fmt_s(r["wall"]), "speedup": f"{runs[base]['wall'] / r['wall']:.2f}x",
                     "tokens/s (tokenizer excluded)": f"{m['tokens'] / r['wall']:,.0f}", "tokens": f"{m['tokens']:,}",
                     "sequences": f"{m['sequences']:,}", "lower bound": f"{m['lower_bound_sequences']:,}",
                     "vs bound": f"+{100 * over:.4f}%", "padding": f"{100 * m['padding_fraction']:.4f}%",
                     "docs cut (> L)": f"{cut[w][0]:,}", "docs <= L cut": cut[w][1],
                     "task s": f"{min(t['seconds'] for t in r['tasks']):.1f}-{max(t['seconds'] for t in r['tasks']):.1f}",
                     "peak RSS per task MB": f"{min(peaks):,.0f}-{max(peaks):,.0f}",
                     "worker RSS between tasks MB": f"{max(t['rss_before_mb'] for t in r['tasks']):,.0f}",
                     "same output as 1 worker": digests[w] == digests[base]})
    print()
    print(markdown_table(rows))
    print(f"\n{len(groups)} tasks of <= {cfg.documents_per_task:,} documents. A task's memory is its buffer's "
          f"token lists ({min(cfg.buffer_docs, cfg.documents_per_task):,} documents x {all_lengths.mean():,.0f} "
          "tokens x 4 B as int32 arrays) "
          "plus their packed copy and the Parquet writer's buffers. Task times that grow with the worker count mean the cores were not free "
          "(a shared machine): the speedup is only meaningful when they stay flat.")
    checks = {"within_0.05%": all((r["manifest"]["sequences"] - r["manifest"]["lower_bound_sequences"])
                                  <= 0.0005 * r["manifest"]["lower_bound_sequences"] for r in runs.values()),
              "no_fitting_document_cut": all(c[1] == 0 for c in cut.values()),
              "identical_output": all(d == digests[base] for d in digests.values()),
              "every_token_packed": all(r["manifest"]["tokens"] == int(all_lengths.sum()) for r in runs.values())}
    print(f"checks: {checks}")
    print("\nTokenization throughput, real text, the project's tokenizer (pack.tokenizer default, "
          f"{tok.name}):\n")
    tok_rows = tokenization_throughput()
    print(markdown_table(tok_rows))
    per_core = tok_rows[-1]["tokens/s (1 core)"]
    tokenize_core_s = int(all_lengths.sum()) / per_core
    print(f"\nOn real text the stage also tokenizes: {int(all_lengths.sum()):,} tokens at {per_core:,} tokens/s per "
          f"core is ~{tokenize_core_s:,.0f} core-seconds more (the wall times above exclude it: the synthetic "
          "tokenizer only makes the token lists).")
    save_result("pack", {
        "command": "python benchmarks/scale.py pack " + " ".join(args.argv), "seq_len": L, "lengths": dist,
        "documents": len(all_lengths), "tokens": int(all_lengths.sum()), "shards": len(refs), "tasks": len(groups),
        "pack_config": cfg.model_dump(mode="json"), "checks": checks,
        "runs": {w: {"wall_s": r["wall"], "manifest": {k: v for k, v in r["manifest"].items()
                                                       if k not in ("shards", "inputs", "stats")},
                     "tasks": [{k: v for k, v in t.items() if k != "record"} for t in r["tasks"]],
                     "docs_cut": cut[w][0], "docs_le_L_cut": cut[w][1], "segments": cut[w][2],
                     "files": len(digests[w])} for w, r in runs.items()},
        "tokenization": tok_rows, "real_tokenization_core_seconds_estimate": tokenize_core_s})


# =============================================================================== b. prefect

# Server settings for flows of many task runs (Prefect 3.8). In Prefect 3 the client runs tasks
# itself and reports each state change as an event (Pending, Running, Completed: 3 per task run);
# the server's task-run recorder turns those events into task_run rows, and the event persister
# stores the events. Both read them from an in-memory queue that holds 10,000 messages and drops
# what arrives when it is full (prefect/server/utilities/messaging/memory.py, not configurable).
RECOMMENDED_SERVER = {
    # Default 1: one database transaction per event. Batching is what lets the recorder keep up
    # with a flow that finishes tens of tasks per second (bulk upsert since Prefect PR #19586).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    # Seconds between flushes of a partial batch; the service truncates it to an int, so >= 1.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    # Default 20 events per insert, flushed every 5 s.
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
    # Every task run leaves ~3 events in the events tables; the default keeps them 7 days. One
    # day is enough for the UI's recent views, and the hourly vacuum then keeps the tables small.
    "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": "P1D",
    # PostgreSQL: more connections for the API and the services at once (default 5 + 10 overflow).
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "20",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "20",
}
# Client side (the flow's process and its workers).
RECOMMENDED_CLIENT = {
    # Never write task results to local storage: winnow's tasks return small records and write
    # their data themselves (winnow's tasks set persist_result=False; this covers any other).
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}

# Further, for a server whose flows map thousands of tasks at once (measured as "lean"): the
# fewer consumers parse every event and the fewer API calls each task makes, the more events
# per second the one server process keeps up with.
LEAN_SERVER = {
    # Reactive automations evaluate every event; winnow's deployments use none.
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}
LEAN_CLIENT = {
    # Each task run's INFO lines ("Finished in state Completed()") are posted to the API.
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}
SETTINGS = {"default": ({}, {}), "recommended": (RECOMMENDED_SERVER, RECOMMENDED_CLIENT),
            "lean": ({**RECOMMENDED_SERVER, **LEAN_SERVER}, {**RECOMMENDED_CLIENT, **LEAN_CLIENT})}


def trivial(i: int) -> int:
    """The mapped task: microseconds of work, so the flow's time is Prefect's."""
    return 2 * i


@dataclass(frozen=True)
class Trivial:
    """:func:`trivial` as the typed work item a mapper runs."""

    i: int

    def __call__(self) -> int:
        return trivial(self.i)

    def label(self) -> str:
        return str(self.i)


def flow_child(n: int, workers: int) -> None:
    """The measured flow, in its own process (``_flow`` sub-command): N trivial tasks mapped by
    winnow's PrefectMapper on the threads runner, then the same function in a plain loop."""
    from prefect import flow
    from prefect.runtime import flow_run

    from winnow.config import RunnerConfig
    from winnow.flows.runtime import Display, PrefectMapper, task_runner_for

    cfg = RunnerConfig(kind="threads", workers=workers)

    @flow(name="winnow-scale-many-tasks", persist_result=False)
    def many_tasks(n: int) -> dict[str, float]:
        print(f"FLOW_RUN {flow_run.get_id()}", flush=True)
        with task_runner_for(cfg) as runner:
            mapper = PrefectMapper(runner, cfg, Display(enabled=False, show_summary=False))
            t0 = time.perf_counter()
            results = mapper.map([Trivial(i) for i in range(n)], name="trivial")
            mapped = time.perf_counter() - t0
        assert results == [2 * i for i in range(n)]
        return {"map_s": mapped}

    t0 = time.perf_counter()
    out = many_tasks(n)
    flow_s = time.perf_counter() - t0
    print(f"FLOW_END {time.time()}", flush=True)
    t0 = time.perf_counter()
    loop = [trivial(i) for i in range(n)]
    loop_s = time.perf_counter() - t0
    assert len(loop) == n
    print("RESULT " + json.dumps({**out, "flow_s": flow_s, "loop_s": loop_s}), flush=True)


def _count(client: Any, url: str, flow_run_id: str, state: str | None = None) -> int:
    body: dict[str, Any] = {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}}
    if state:
        body["task_runs"]["state"] = {"type": {"any_": [state]}}
    r = client.post(f"{url}/task_runs/count", json=body, timeout=30)
    r.raise_for_status()
    return int(r.json())


def many_tasks_run(label: str, url: str, home: Path, n: int, workers: int, client_env: dict[str, str],
                   lag_timeout: float, stall_s: float = 120) -> dict[str, Any]:
    """Run the flow in a child process; sample the server's task-run counts until they reach n."""
    import httpx
    from helpers.servers import prefect_env

    env = prefect_env(home / f"client-{label}", url, **client_env)
    t_start = time.time()
    proc = subprocess.Popen([sys.executable, __file__, "_flow", "--tasks", str(n), "--flow-workers", str(workers)],
                            env=env, stdout=subprocess.PIPE, stderr=open(home / f"flow-{label}.log", "w"), text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    flow_run_id: str | None = None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("FLOW_RUN "):
            flow_run_id = line.split()[1]
            break
    if flow_run_id is None:
        proc.wait()
        raise RuntimeError(f"the flow did not start: {(home / f'flow-{label}.log').read_text()[-3000:]}")
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    samples.append((time.time(), _count(client, url, flow_run_id),
                                    _count(client, url, flow_run_id, "COMPLETED")))
                stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rest = proc.stdout.read()
    rc = proc.wait()
    t_exit = time.time()
    lines += rest.splitlines()
    if rc:
        stop.set()
        raise RuntimeError(f"the flow failed ({rc}): {(home / f'flow-{label}.log').read_text()[-3000:]}")
    result = json.loads(next(ln for ln in lines if ln.startswith("RESULT "))[7:])
    t_end = float(next(ln for ln in lines if ln.startswith("FLOW_END ")).split()[1])
    # Wait until every task run is recorded as completed, or the counts stop moving for
    # stall_s (messages the server dropped never arrive), or lag_timeout.
    deadline = time.time() + lag_timeout
    while time.time() < deadline and not (samples and samples[-1][1] >= n and samples[-1][2] >= n):
        moved = [t for (_, *c), (t, *d) in zip(samples, samples[1:]) if c != d]
        if samples and time.time() - max([t_end, *moved]) > stall_s:
            break
        time.sleep(0.5)
    stop.set()
    sampler.join()

    def reached(col: int) -> float | None:
        # A sample is two queries, total then completed: a run completed by the second is recorded.
        hit = next((t for t, *counts in samples if max(counts[col - 1:]) >= n), None)
        return None if hit is None else max(0.0, hit - t_end)

    log = (url.home / "server.log").read_text(errors="replace") if hasattr(url, "home") else ""
    final = samples[-1] if samples else (0.0, 0, 0)
    return {
        "settings": label, "tasks": n, "workers": workers, "flow_run_id": flow_run_id,
        "process_wall_s": t_exit - t_start, "flow_s": result["flow_s"], "map_s": result["map_s"],
        "loop_s": result["loop_s"], "overhead_ms_per_task": 1000 * (result["map_s"] - result["loop_s"]) / n,
        "lag_all_recorded_s": reached(1), "lag_all_completed_s": reached(2),
        "client_exit_after_flow_end_s": t_exit - t_end,
        "final_count": final[1], "final_completed": final[2],
        "dropped_messages_logged": log.count("Subscription queue is full"),
        "samples": [(round(t - t_start, 1), c, d) for t, c, d in samples],
    }


def part_prefect(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.servers import postgres_server, prefect_server

    print(f"\n## b. {args.tasks:,} task runs on a Prefect server on PostgreSQL ({machine()})\n")
    runs = []
    tmp = Path(tempfile.mkdtemp(prefix="winnow-scale-prefect-", dir=args.tmp))
    try:
        for label in args.settings:
            server_env, client_env = SETTINGS[label]
            home = tmp / label
            with postgres_server() as db, prefect_server(home, db, extra=server_env) as url:
                r = many_tasks_run(label, url, home, args.tasks, args.flow_workers, client_env, args.lag_timeout)
            runs.append(r)
            lag = r["lag_all_completed_s"]
            print(f"{label}: flow {fmt_s(r['flow_s'])} s, {r['overhead_ms_per_task']:.1f} ms per task, all "
                  f"{args.tasks:,} completed on the server "
                  + (f"{lag:.1f} s after the flow ended" if lag is not None else
                     f"NEVER: the counts stopped at {r['final_count']:,} recorded, {r['final_completed']:,} "
                     f"completed ({r['dropped_messages_logged']:,} messages dropped by the server)"), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(markdown_table([{
        "server settings": r["settings"], "task runs": f"{r['tasks']:,}", "flow wall s": fmt_s(r["flow_s"]),
        "map s": fmt_s(r["map_s"]), "plain loop s": f"{r['loop_s']:.3f}",
        "overhead per task ms": f"{r['overhead_ms_per_task']:.1f}",
        "server lag: all recorded s": "-" if r["lag_all_recorded_s"] is None else f"{r['lag_all_recorded_s']:.1f}",
        "server lag: all COMPLETED s": "-" if r["lag_all_completed_s"] is None else f"{r['lag_all_completed_s']:.1f}",
        "recorded at the end": f"{r['final_count']:,} / {r['final_completed']:,} completed",
        "messages dropped (server log)": r["dropped_messages_logged"]} for r in runs]))
    for label in args.settings:
        server_env, client_env = SETTINGS[label]
        if server_env or client_env:
            print(f"\n{label}: server (env of `prefect server start`) "
                  + " ".join(f"{k}={v}" for k, v in server_env.items())
                  + "; flow and workers " + " ".join(f"{k}={v}" for k, v in client_env.items()))
    previous = json.loads(RESULTS.read_text()).get("prefect", {}) if RESULTS.exists() else {}
    # Runs of other settings or sizes from earlier invocations stay (run one setting at a time).
    kept = [r for r in previous.get("runs", []) if (r["settings"], r["tasks"]) not in
            {(label, args.tasks) for label in args.settings}]
    save_result("prefect", {"command": "python benchmarks/scale.py prefect " + " ".join(args.argv),
                            "settings": {k: {"server": v[0], "client": v[1]} for k, v in SETTINGS.items()},
                            "runs": kept + runs})


# =============================================================================== c. files

def real_paragraphs(limit: int = 20_000) -> list[str]:
    out: list[str] = []
    for path in sorted((shared_data() / "text").rglob("*.txt.gz")):
        text = re.sub(r"(?<!\n)\n(?!\n)", " ", gzip.open(path, "rt", encoding="utf-8").read())
        out += [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 20]
        if len(out) >= limit:
            break
    return out[:limit]


def write_tiny_files(folder: Path, n: int) -> int:
    """n JSONL files of one real paragraph each (ids unique, texts cycling); bytes written."""
    paras = real_paragraphs()
    folder.mkdir(parents=True)
    total = 0
    for k in range(n):
        line = json.dumps({"id": f"tiny-{k:06d}", "text": paras[k % len(paras)]}) + "\n"
        # 1,000 files per folder: the listing walks a tree, as a crawl's prefixes would be.
        sub = folder / f"{k // 1000:03d}"
        if k % 1000 == 0:
            sub.mkdir()
        (sub / f"doc-{k:06d}.jsonl").write_text(line)
        total += len(line.encode())
    return total


def api_json(url: str, path: str, body: dict[str, Any]) -> Any:
    import httpx

    r = httpx.post(f"{url}{path}", json=body, timeout=60)
    r.raise_for_status()
    return r.json()


def flow_task_runs(url: str, flow_name: str, settle_s: float = 120) -> dict[str, Any]:
    """The newest run of ``flow_name`` and its task runs by name, once the count stops changing
    (the server records task runs from events, seconds after they ran)."""
    runs = api_json(url, "/flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}},
                                               "sort": "START_TIME_DESC", "limit": 1})
    if not runs:
        return {"flow_run": None, "task_runs": 0}
    rid = runs[0]["id"]
    last, stable, deadline = -1, 0, time.time() + settle_s
    while time.time() < deadline:
        n = int(api_json(url, "/task_runs/count", {"task_runs": {"flow_run_id": {"any_": [rid]}}}))
        stable = stable + 1 if n == last else 0
        if stable >= 5:
            break
        last = n
        time.sleep(1)
    names: dict[str, int] = {}
    seconds: dict[str, float] = {}
    offset = 0
    while True:
        page = api_json(url, "/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [rid]}},
                                                   "limit": 200, "offset": offset})
        for tr in page:
            key = str(tr["name"]).split(" ", 1)[0]  # "curate-shard part-00003.parquet +99" -> curate-shard
            names[key] = names.get(key, 0) + 1
            seconds[key] = seconds.get(key, 0.0) + float(tr.get("total_run_time") or 0.0)
        if len(page) < 200:
            break
        offset += 200
    flow = api_json(url, "/flow_runs/filter", {"flow_runs": {"id": {"any_": [rid]}}})[0]
    return {"flow_run": rid, "flow_state": runs[0].get("state_type"), "task_runs": last, "by_task": names,
            "task_seconds": {k: round(v, 2) for k, v in seconds.items()},
            "flow_run_seconds": flow.get("total_run_time")}


def winnow_run(config: Path, env: dict[str, str], log: Path, *extra: str, timeout: float = 3600) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run([str(BIN / "winnow"), "run", str(config), *extra], env=env, cwd=config.parent,
                              stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"winnow run {config.name} failed ({proc.returncode}):\n{log.read_text()[-4000:]}")
    return wall


def part_files(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.servers import prefect_env, prefect_server

    from winnow.config import RunnerConfig
    from winnow.inputs import group_inputs, list_inputs

    n = args.files
    print(f"\n## c. {n:,} tiny input files ({machine()})\n")
    tmp = Path(tempfile.mkdtemp(prefix="winnow-scale-files-", dir=args.tmp))
    result: dict[str, Any] = {"command": "python benchmarks/scale.py files " + " ".join(args.argv), "files": n}
    try:
        src = tmp / "inputs"
        t0 = time.perf_counter()
        size = write_tiny_files(src, n)
        print(f"wrote {n:,} JSONL files of one real paragraph each ({size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        listing = list_inputs([str(src)])
        t_list = time.perf_counter() - t0
        runner = RunnerConfig()
        rows = []
        for mb in (1.0, 0.0):
            t0 = time.perf_counter()
            groups = group_inputs(listing.files, mb)
            t_group = time.perf_counter() - t0
            tasks = runner.batches(len(groups))
            rows.append({"shard_size_mb": f"{mb:g}" + (" (default)" if mb == 1.0 else " (one shard per file)"),
                         "files listed": f"{len(listing.files):,}", "list_inputs s": f"{t_list:.2f}",
                         "group_inputs s": f"{t_group:.3f}", "shards": f"{len(groups):,}",
                         "curate tasks (runner.batches)": f"{len(tasks):,}",
                         "shards per task": f"{min(map(len, tasks))}-{max(map(len, tasks))}",
                         "bounded by max_tasks": len(tasks) <= runner.max_tasks})
        print(markdown_table(rows))
        result["grouping"] = rows
        configs = [("default grouping", 1.0)] + ([] if args.skip_per_file_shards else [("one shard per file", 0.0)])
        result["runs"] = []
        with prefect_server(tmp / "prefect") as url:
            for label, mb in configs:
                out = tmp / f"out-{mb:g}"
                cfg = tmp / f"files-{mb:g}.yaml"
                cfg.write_text(json.dumps({"input": [str(src)], "output": str(out), "shard_size_mb": mb,
                                           "runner": {"kind": "threads", "workers": os.cpu_count() or 1}}))
                print(f"\nwinnow run ({label}; threads, {os.cpu_count()} workers; default stages: "
                      "read -> lid (annotate only) -> quality rules) ...", flush=True)
                wall = winnow_run(cfg, prefect_env(tmp / "client", url), tmp / f"run-{mb:g}.log")
                summary = json.loads((out / "summary.json").read_text())
                runs = flow_task_runs(url, "winnow-curate")
                r = {"run": label, "shard_size_mb": mb, "wall_s": wall, "shards": summary["shards"],
                     "input_files": summary["input_files"], "documents_out": summary["rows"],
                     "documents_in": summary["stages"].get("read", {}).get("docs_in"),
                     "task_runs": runs["task_runs"], "task_runs_by_task": runs.get("by_task"),
                     "flow_state": runs.get("flow_state"), "expected_curate_tasks": len(runner.batches(summary["shards"]))}
                result["runs"].append(r)
                print(f"{label}: {fmt_s(wall)} s, {r['shards']:,} shards, {r['task_runs']:,} task runs on the server "
                      f"({r['task_runs_by_task']}), {r['documents_in']:,} documents read, {r['documents_out']:,} kept",
                      flush=True)
                shutil.rmtree(out, ignore_errors=True)
        print()
        print(markdown_table([{"run": r["run"], "files": f"{r['input_files']:,}", "shards": f"{r['shards']:,}",
                               "wall s": fmt_s(r["wall_s"]), "files/s": f"{r['input_files'] / r['wall_s']:,.0f}",
                               "task runs (Prefect API)": f"{r['task_runs']:,}",
                               "documents in -> out": f"{r['documents_in']:,} -> {r['documents_out']:,}"}
                              for r in result["runs"]]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_result("files", result)


# =============================================================================== d. dask

BUCKET = "winnow-scale"
# The demo's stages (examples/demo.yaml): ingest with a block list, LID en, quality rules with
# rejected documents written, PII masking, MinHash dedup, packing.
PIPELINE: dict[str, Any] = {
    "ingest": {"extractor": "resiliparse", "url_filter": {"blocked_domains_file": None}},
    "lid": {"keep": ["en"], "threshold": 0.65},
    "quality": {"mode": "filter", "write_rejected": True},
    "pii": {"enabled": True, "kinds": ["email", "ip"]},
    "dedup": {"enabled": True},
    "pack": {"enabled": True, "seq_len": 2048, "strategy": "best_fit"},
}
# strace: every call that can create, change or remove a path (reads are left out).
TRACED = "openat,open,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat," \
         "rmdir,truncate"
_TRACE_LINE = re.compile(r'^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((.*)\)\s+=\s+(-?\d+)')
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def pipeline_config(inputs: list[str], output: str, blocklist: str, runner: dict[str, Any],
                    storage_options: dict[str, Any]) -> dict[str, Any]:
    cfg = json.loads(json.dumps(PIPELINE))
    cfg["ingest"]["url_filter"]["blocked_domains_file"] = blocklist
    return {"input": inputs, "output": output, "storage_options": storage_options, "runner": runner, **cfg}


def snapshot(root: Path) -> set[str]:
    """Every path under root (folders included), relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def tmp_entries() -> dict[str, float]:
    """Top-level entries of /tmp with their modification times."""
    out = {}
    for p in Path("/tmp").iterdir():
        with contextlib.suppress(OSError):
            out[p.name] = p.lstat().st_mtime
    return out


def traced_writes(trace: Path, cwd: Path) -> list[tuple[str, str]]:
    """(path, strace line) for every path a traced process tree created, wrote, renamed or
    removed (successful calls only)."""
    out = []
    for line in trace.read_text(errors="replace").splitlines():
        m = _TRACE_LINE.match(line)
        if not m or int(m.group(4)) < 0:
            continue
        call, argstr = m.group(2), m.group(3)
        if call in ("openat", "open") and not re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", argstr):
            continue
        # strace -y shows a directory fd argument with its path: unlinkat(6</x/y>, "name", ...)
        dirfd = re.match(r"\d+<([^>]*)>", argstr)
        base = Path(dirfd.group(1)) if dirfd else cwd
        for raw in _QUOTED.findall(argstr):
            path = raw.encode().decode("unicode_escape")
            out.append((path if path.startswith("/") else str(base / path), line))
    return out


def classify_writes(paths: list[tuple[str, str]], own: dict[str, Path]) -> dict[str, list[str]]:
    """Group written paths: inside the worker's own TMPDIR/HOME, its working directory, the rest
    of /tmp, pseudo file systems, and anything else (with the system calls, for the last ones)."""
    groups: dict[str, set[str]] = {"own TMPDIR": set(), "own HOME": set(), "working directory": set(),
                                   "/tmp outside TMPDIR": set(), "/dev, /proc": set(), "elsewhere": set(),
                                   "calls outside TMPDIR and HOME": set()}
    for p, line in paths:
        real = os.path.normpath(p)
        if real.startswith(str(own["tmp"]) + "/") or real == str(own["tmp"]):
            groups["own TMPDIR"].add(real)
        elif real.startswith(str(own["home"]) + "/"):
            groups["own HOME"].add(real)
        elif real.startswith(("/dev/", "/proc/")):
            groups["/dev, /proc"].add(real)
        else:
            where = "working directory" if real.startswith(str(own["cwd"]) + "/") or real == str(own["cwd"]) \
                else "/tmp outside TMPDIR" if real.startswith("/tmp/") or real == "/tmp" else "elsewhere"
            groups[where].add(real)
            groups["calls outside TMPDIR and HOME"].add(line.strip())
    return {k: sorted(v) for k, v in groups.items()}


def worker_probe(dask_worker: Any) -> dict[str, Any]:
    """Run in each Dask worker: where it runs and how many tasks it executed."""
    return {"name": dask_worker.name, "cwd": os.getcwd(), "tmpdir": tempfile.gettempdir(),
            "home": os.path.expanduser("~"), "pid": os.getpid(), "tasks_executed": dask_worker.state.executed_count}


@contextlib.contextmanager
def process(cmd: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in a session of its own, stopped (the whole group) on the way out."""
    from helpers.servers import stop_group

    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        try:
            yield proc
        finally:
            stop_group(proc)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2)
            return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def part_dask(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    import boto3
    from distributed import Client
    from helpers.servers import free_port, output_of, prefect_env, prefect_server

    print(f"\n## d. The pipeline on two Dask workers that share only S3 ({machine()})\n")
    tmp = Path(tempfile.mkdtemp(prefix="winnow-scale-dask-", dir=args.tmp))
    # Workers' working directories and homes live outside /tmp, so that any write of theirs to
    # /tmp outside their own TMPDIR is seen as one.
    homes = Path(tempfile.mkdtemp(prefix="winnow-scale-dask-", dir="/var/tmp"))
    strace = shutil.which("strace") if not args.no_strace else None
    result: dict[str, Any] = {"command": "python benchmarks/scale.py dask " + " ".join(args.argv),
                              "strace": bool(strace)}
    try:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with contextlib.ExitStack() as stack:
            moto = stack.enter_context(process([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                               tmp / "moto.log"))
            wait_http(endpoint, moto, tmp / "moto.log")
            so = {"key": "testing", "secret": "testing",
                  "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
            s3.create_bucket(Bucket=BUCKET)
            warcs = sorted((REPO / "examples" / "data" / "warc").iterdir())
            for p in warcs:
                s3.upload_file(str(p), BUCKET, f"input/warc/{p.name}")
            blocklist = REPO / "examples" / "blocklists" / "domains.txt"
            s3.upload_file(str(blocklist), BUCKET, "config/domains.txt")
            url = stack.enter_context(prefect_server(tmp / "prefect"))
            sport = free_port()
            address = f"tcp://127.0.0.1:{sport}"
            (tmp / "scheduler").mkdir()
            stack.enter_context(process([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(sport),
                                         "--no-dashboard"], tmp / "scheduler.log", cwd=tmp / "scheduler",
                                        env=prefect_env(tmp / "scheduler-prefect", url)))
            workers: list[dict[str, Path]] = []
            for k in (1, 2):
                own = {"cwd": homes / f"worker-{k}" / "cwd", "home": homes / f"worker-{k}" / "home",
                       "tmp": tmp / f"worker-{k}-tmp", "trace": tmp / f"worker-{k}.strace"}
                for d in ("cwd", "home", "tmp"):
                    own[d].mkdir(parents=True)
                env = {k2: v for k2, v in prefect_env(own["home"] / ".prefect", url).items()
                       if not k2.startswith("AWS_")}
                env.update(HOME=str(own["home"]), TMPDIR=str(own["tmp"]))
                cmd = [str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                       "--name", f"worker-{k}"]
                if strace:
                    cmd = [strace, "-f", "-qq", "-y", "-e", f"trace={TRACED}", "-o", str(own["trace"]), *cmd]
                stack.enter_context(process(cmd, tmp / f"worker-{k}.log", cwd=own["cwd"], env=env))
                workers.append(own)
            with Client(address, timeout=60) as client:
                client.wait_for_workers(2, timeout=120)
            before = {k: {d: snapshot(w[d]) for d in ("cwd", "home", "tmp")} for k, w in enumerate(workers, 1)}
            tmp_before = tmp_entries()
            dask_cfg = tmp / "dask.yaml"
            dask_cfg.write_text(json.dumps(pipeline_config(
                [f"s3://{BUCKET}/input/warc/"], f"s3://{BUCKET}/out-dask", f"s3://{BUCKET}/config/domains.txt",
                {"kind": "dask", "retries": 0}, so)))
            print(f"winnow run on the Dask cluster ({address}, 2 workers; input, output, block list on s3://) ...",
                  flush=True)
            try:
                wall = winnow_run(dask_cfg, prefect_env(tmp / "client", url), tmp / "run-dask.log",
                                  "--dask-address", address)
                result["dask_error"] = None
            except RuntimeError as exc:
                wall, result["dask_error"] = float("nan"), str(exc)
                print(f"the Dask run FAILED:\n{exc}", flush=True)
            after = {k: {d: snapshot(w[d]) for d in ("cwd", "home", "tmp")} for k, w in enumerate(workers, 1)}
            tmp_after = tmp_entries()
            with Client(address, timeout=60) as client:
                seen = client.run(worker_probe)
            result["workers_saw"] = list(seen.values())
            result["task_runs"] = flow_task_runs(url, "winnow-curate")
            local_out = tmp / "out-threads"
            threads_cfg = tmp / "threads.yaml"
            threads_cfg.write_text(json.dumps(pipeline_config(
                [str(REPO / "examples" / "data" / "warc")], str(local_out), str(blocklist),
                {"kind": "threads", "workers": 2, "retries": 0}, {})))
            print("winnow run, threads runner, local paths, same settings ...", flush=True)
            t_threads = winnow_run(threads_cfg, prefect_env(tmp / "client-threads", url), tmp / "run-threads.log")
            local = output_of(str(local_out))
            remote = output_of(f"s3://{BUCKET}/out-dask", so) if result["dask_error"] is None else None
            keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="out-dask/")
                    for o in page.get("Contents", [])]
            written = len(keys)
            expected = ["summary.json", "summary.md", "report.html", "packed/__meta__/manifest.json", "packed/__meta__/README.md"]
            result["outputs_on_s3"] = {name: f"out-dask/{name}" in keys for name in expected} | {
                folder: sum(k.startswith(f"out-dask/{folder}/") and k.endswith(".parquet") for k in keys)
                for folder in ("documents", "rejected", "deduped", "packed")}
            log_text = (tmp / "run-dask.log").read_text(errors="replace")
            result["run_warnings"] = [ln.strip() for ln in log_text.splitlines()
                                      if re.search(r"warning|could not|error|traceback", ln, re.I)][:20]
        same = remote is not None and all(remote[k] == local[k] for k in ("docs", "sequences", "rows")) \
            and {k: v for k, v in remote["dedup"].items() if "path" not in k and k != "output"} == \
            {k: v for k, v in local["dedup"].items() if "path" not in k and k != "output"}
        writes: dict[int, dict[str, Any]] = {}
        for k, w in enumerate(workers, 1):
            new = {d: sorted(after[k][d] - before[k][d]) for d in ("cwd", "home", "tmp")}
            traced = classify_writes(traced_writes(w["trace"], w["cwd"]), w) if strace else None
            writes[k] = {"new_in_cwd": new["cwd"], "new_in_home": new["home"], "new_in_tmpdir": len(new["tmp"]),
                         "traced": traced}
        new_tmp = sorted(n for n, t in tmp_after.items() if n not in tmp_before or t > tmp_before[n] + 1e-6)
        new_tmp = [n for n in new_tmp if n != tmp.name]  # this benchmark's own scratch folder
        result.update({
            "dask_wall_s": wall, "threads_wall_s": t_threads, "same_output": same,
            "documents": local["rows"], "sequences": len(local["sequences"]), "dedup": local["dedup"],
            "objects_written_to_s3": written, "workers": writes, "tmp_entries_changed_during_run": new_tmp,
            "worker_dirs": {k: {d: str(w[d]) for d in ("cwd", "home", "tmp")} for k, w in enumerate(workers, 1)},
        })
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(homes, ignore_errors=True)
    print()
    print(markdown_table([
        {"run": "Dask, 2 workers, S3 (moto)", "wall s": fmt_s(result["dask_wall_s"]),
         "documents": f"{result['documents']:,}", "sequences": f"{result['sequences']:,}",
         "task runs": result["task_runs"]["task_runs"], "same output as threads": result["same_output"]},
        {"run": "threads, local disk", "wall s": fmt_s(result["threads_wall_s"]), "documents": f"{result['documents']:,}",
         "sequences": f"{result['sequences']:,}", "task runs": "-", "same output as threads": "-"}]))
    print()
    rows = []
    for k, w in result["workers"].items():
        t = w["traced"] or {}
        rows.append({"worker": k, "new files in working directory": len(w["new_in_cwd"]),
                     "new in HOME": len(w["new_in_home"]), "new in own TMPDIR": w["new_in_tmpdir"],
                     "traced writes: own TMPDIR": len(t.get("own TMPDIR", [])) if t else "-",
                     "working directory": len(t.get("working directory", [])) if t else "-",
                     "/tmp outside TMPDIR": len(t.get("/tmp outside TMPDIR", [])) if t else "-",
                     "HOME": len(t.get("own HOME", [])) if t else "-",
                     "elsewhere": len(t.get("elsewhere", [])) if t else "-"})
    print(markdown_table(rows))
    for k, w in result["workers"].items():
        t = w["traced"] or {}
        for group in ("working directory", "/tmp outside TMPDIR", "own HOME", "elsewhere", "calls outside TMPDIR and HOME"):
            if t.get(group):
                print(f"worker {k}, {group}: {t[group][:8]}{' ...' if len(t[group]) > 8 else ''}")
        if w["new_in_cwd"] or w["new_in_home"]:
            print(f"worker {k}: new in cwd {w['new_in_cwd'][:8]}, new in HOME {w['new_in_home'][:8]}")
    if result["tmp_entries_changed_during_run"]:
        print(f"/tmp entries created or changed during the run (by any process on this shared machine): "
              f"{result['tmp_entries_changed_during_run'][:10]}")
    tr = result["task_runs"]
    print(f"\nDask run: flow run {tr.get('flow_run_seconds')} s; task run seconds by task (summed over "
          f"both workers): {tr.get('task_seconds')}")
    print(f"written to S3 by the Dask run: {result['objects_written_to_s3']} objects; {result.get('outputs_on_s3')}")
    if result.get("run_warnings"):
        print("warnings in the Dask run's output: " + " | ".join(result["run_warnings"][:5]))
    print("\nworkers: " + "; ".join(f"{w['name']}: {w['tasks_executed']} tasks, cwd {w['cwd']}, TMPDIR {w['tmpdir']}"
                                  for w in result["workers_saw"]))
    if result.get("dask_error"):
        print(f"\nthe Dask run failed:\n{result['dask_error']}")
    save_result("dask", result)




# =============================================================================== main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", nargs="?", default="all", choices=["all", "pack", "prefect", "files", "dask", "_flow"])
    ap.add_argument("--quick", action="store_true", help="small sizes everywhere (a check that it runs)")
    ap.add_argument("--tmp", default=None, help="scratch folder (default: the system temp folder)")
    g = ap.add_argument_group("pack")
    g.add_argument("--tokens", type=float, default=1e9)
    g.add_argument("--workers", default="1,2", help="worker processes of the runs compared")
    g.add_argument("--seq-len", type=int, default=2048)
    g.add_argument("--docs-per-shard", type=int, default=2000)
    g.add_argument("--force", action="store_true", help="run even if the memory estimate exceeds what is free")
    g.add_argument("--documents-per-task", type=int, default=None, help="default: the stage's (200,000)")
    g.add_argument("--max-doc-tokens", type=int, default=250_000, help="clip of the length distribution "
                   "(ingest.max_text_chars 1M characters is about 250k tokens)")
    g = ap.add_argument_group("prefect")
    g.add_argument("--tasks", type=int, default=20_000)
    g.add_argument("--flow-workers", type=int, default=os.cpu_count() or 1, help="threads of the flow's runner")
    g.add_argument("--settings", default="default,recommended,lean",
                   help="settings of the runs (SETTINGS: default, recommended, lean)")
    g.add_argument("--lag-timeout", type=float, default=600, help="seconds to wait for the server to catch up")
    g = ap.add_argument_group("files")
    g.add_argument("--files", type=int, default=100_000)
    g.add_argument("--skip-per-file-shards", action="store_true",
                   help="do not run with shard_size_mb 0 (one shard per file; ~10 min for 100k files)")
    g = ap.add_argument_group("dask")
    g.add_argument("--no-strace", action="store_true", help="do not trace the workers' file writes")
    args = ap.parse_args()
    if args.part == "_flow":
        return flow_child(args.tasks, args.flow_workers)
    args.settings = args.settings.split(",")
    args.argv = sys.argv[2:] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else sys.argv[1:]
    args.workers = [int(w) for w in str(args.workers).split(",")]
    if args.quick:
        args.tokens = min(args.tokens, 2e7)
        args.tasks = min(args.tasks, 300)
        args.files = min(args.files, 2000)
    parts = ["pack", "prefect", "files", "dask"] if args.part == "all" else [args.part]
    failed = []
    for part in parts:
        run = {"pack": part_pack, "prefect": part_prefect, "files": part_files, "dask": part_dask}[part]
        if len(parts) == 1:
            run(args)
            continue
        try:  # one part failing must not cost the others their (long) measurement
            run(args)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failed.append(part)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
