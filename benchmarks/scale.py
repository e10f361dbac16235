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
   Prefect API recorded.
d. ``dask``: the whole pipeline on a Dask cluster of a scheduler and two separately started
   workers (own working directory, TMPDIR and HOME each) that share nothing but a moto S3
   endpoint; input, output and block list on s3://. The output must equal a local threads run
   of the same config, and no worker may write outside its own TMPDIR (checked by listing the
   folders before/after, and with strace when it is installed).

    python benchmarks/scale.py [all|pack|prefect|files|dask] [--quick]
    python benchmarks/scale.py pack [--tokens 1e9] [--workers 1,2]
    python benchmarks/scale.py prefect [--tasks 20000] [--settings default,recommended]
    python benchmarks/scale.py files [--files 100000] [--per-file-shards]

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
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
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


def fmt_s(seconds: float) -> str:
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
                     "tokens/s": f"{m['tokens'] / r['wall']:,.0f}", "tokens": f"{m['tokens']:,}",
                     "sequences": f"{m['sequences']:,}", "lower bound": f"{m['lower_bound_sequences']:,}",
                     "vs bound": f"+{100 * over:.4f}%", "padding": f"{100 * m['padding_fraction']:.4f}%",
                     "docs cut (> L)": f"{cut[w][0]:,}", "docs <= L cut": cut[w][1],
                     "peak RSS per task MB": f"{min(peaks):,.0f}-{max(peaks):,.0f}",
                     "same output as 1 worker": digests[w] == digests[base]})
    print()
    print(markdown_table(rows))
    slow = max(runs[base]["tasks"], key=lambda t: t["seconds"])
    print(f"\nPer task ({len(groups)} tasks of <= {cfg.documents_per_task:,} documents): "
          f"{min(t['seconds'] for t in runs[base]['tasks']):.1f}-{slow['seconds']:.1f} s each with "
          f"{base} worker(s); memory is the buffer's token lists ({cfg.buffer_docs:,} documents x "
          f"{all_lengths.mean():,.0f} tokens x ~36 B as Python ints) plus their packed copy.")
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
    save_result("pack", {
        "command": "python benchmarks/scale.py pack " + " ".join(args.argv), "seq_len": L, "lengths": dist,
        "documents": len(all_lengths), "tokens": int(all_lengths.sum()), "shards": len(refs), "tasks": len(groups),
        "pack_config": cfg.model_dump(mode="json"), "checks": checks,
        "runs": {w: {"wall_s": r["wall"], "manifest": {k: v for k, v in r["manifest"].items()
                                                       if k not in ("shards", "inputs", "stats")},
                     "tasks": [{k: v for k, v in t.items() if k != "record"} for t in r["tasks"]],
                     "docs_cut": cut[w][0], "docs_le_L_cut": cut[w][1], "segments": cut[w][2],
                     "files": len(digests[w])} for w, r in runs.items()},
        "tokenization": tok_rows})


# =============================================================================== main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", nargs="?", default="all", choices=["all", "pack", "prefect", "files", "dask"])
    ap.add_argument("--quick", action="store_true", help="small sizes everywhere (a check that it runs)")
    ap.add_argument("--tmp", default=None, help="scratch folder (default: the system temp folder)")
    g = ap.add_argument_group("pack")
    g.add_argument("--tokens", type=float, default=1e9)
    g.add_argument("--workers", default="1,2", help="worker processes of the runs compared")
    g.add_argument("--seq-len", type=int, default=2048)
    g.add_argument("--docs-per-shard", type=int, default=2000)
    g.add_argument("--documents-per-task", type=int, default=None, help="default: the stage's (200,000)")
    g.add_argument("--max-doc-tokens", type=int, default=250_000, help="clip of the length distribution "
                   "(ingest.max_text_chars 1M characters is about 250k tokens)")
    args = ap.parse_args()
    args.argv = sys.argv[2:] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else sys.argv[1:]
    args.workers = [int(w) for w in str(args.workers).split(",")]
    if args.quick:
        args.tokens = min(args.tokens, 2e7)
    parts = ["pack", "prefect", "files", "dask"] if args.part == "all" else [args.part]
    for part in parts:
        {"pack": part_pack}[part](args)


if __name__ == "__main__":
    main()
