"""MinHash dedup: signature speed, correctness on planted near-duplicates (vs datatrove's
4-stage minhash pipeline with the same parameters), connected components at scale, and
end-to-end dedup of 100k and 1M documents. Same run, 5-word shingles, 14 bands x 8 rows.

    python benchmarks/dedup.py [--sections speed,correctness,cc,e2e]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, machine, markdown_table, pin_to_one_core, shared_data

from winnow.document import Document
from winnow.minhash import WordHasher, band_keys, permutations, text_signatures, words
from winnow.tasks.dedup.config import DedupConfig
from winnow.tasks.dedup.stage import dedup_in_process

N_GRAM, BANDS, ROWS = 5, 14, 8


def real_paragraphs() -> list[str]:
    out = []
    for path in sorted((shared_data() / "text").rglob("*.txt.gz")):
        text = re.sub(r"(?<!\n)\n(?!\n)", " ", gzip.open(path, "rt", encoding="utf-8").read())
        for p in re.split(r"\n\s*\n", text):
            w = p.split()
            for i in range(0, len(w), 150):  # long paragraphs -> pieces of at most 150 words
                if len(w[i : i + 150]) >= 8:
                    out.append(" ".join(w[i : i + 150]))
    return out


def windows(paras: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(paras) for _ in range(n)]


# ------------------------------------------------------------------------------------ speed

def speed(paras: list[str]) -> None:
    pin_to_one_core()
    docs = windows(paras, 100_000, 0)
    small = docs[:5_000]
    rows = []

    def shingle_strings(text: str) -> list[str]:
        w = words(text)
        return [" ".join(w[i : i + N_GRAM]) for i in range(max(1, len(w) - N_GRAM + 1))]

    t0 = time.perf_counter()
    hasher = WordHasher()
    a, b = permutations(BANDS * ROWS, 1)
    for k in range(0, len(docs), 20_000):
        band_keys(text_signatures(docs[k : k + 20_000], N_GRAM, hasher, a, b)[0], BANDS, ROWS)
    t_winnow = time.perf_counter() - t0
    rows.append(("winnow (numpy batch, datasketch-compatible; + band keys)", len(docs), t_winnow))

    import rensa

    t0 = time.perf_counter()
    for k in range(0, len(docs), 20_000):
        rensa.RMinHash.digest_matrix_from_token_sets([shingle_strings(t) for t in docs[k : k + 20_000]],
                                                     BANDS * ROWS, 1)
    rows.append(("rensa RMinHash.digest_matrix_from_token_sets", len(docs), time.perf_counter() - t0))

    from datasketch import MinHash

    t0 = time.perf_counter()
    MinHash.bulk([[s.encode() for s in shingle_strings(t)] for t in docs[:20_000]], num_perm=BANDS * ROWS)
    rows.append(("datasketch MinHash.bulk", 20_000, time.perf_counter() - t0))
    t0 = time.perf_counter()
    for t in small:
        m = MinHash(num_perm=BANDS * ROWS)
        m.update_batch([s.encode() for s in shingle_strings(t)])
    rows.append(("datasketch, one MinHash per document", len(small), time.perf_counter() - t0))

    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    with tempfile.TemporaryDirectory() as tmp:
        sig = MinhashDedupSignature(tmp, MinhashConfig(n_grams=N_GRAM, num_buckets=BANDS, hashes_per_bucket=ROWS))
        sig.get_signature(sig.get_shingles("warm up the word tokenizer once before timing it"))
        t0 = time.perf_counter()
        for t in small:
            sh = sig.get_shingles(t)
            if sh.size:
                sig.get_signature(sh)
        rows.append(("datatrove MinhashDedupSignature", len(small), time.perf_counter() - t0))
    base = next(r for r in rows if r[0].startswith("datatrove"))
    base_rate = base[1] / base[2]
    print(f"\nSignature speed, one core, {np.mean([len(d.split()) for d in docs]):.0f} words/document on average "
          f"({machine()})\n")
    print(markdown_table([{"implementation": name, "documents": f"{n:,}", "docs/s": f"{n / s:,.0f}",
                           "vs datatrove": f"{n / s / base_rate:.1f}x"} for name, n, s in rows]))


# ------------------------------------------------------------------------------ correctness

def mutate(text: str, rng: random.Random, kind: str, rate: float) -> str:
    w = text.split()
    if kind == "edit":
        for _ in range(max(1, int(len(w) * rate))):
            w[rng.randrange(len(w))] = rng.choice(["lorem", "ipsum", "dolor", "sit", "amet", "vel"])
    elif kind == "insert":
        for _ in range(max(1, int(len(w) * rate))):
            w.insert(rng.randrange(len(w) + 1), rng.choice(["indeed", "however", "moreover", "thus"]))
    else:  # crop both ends
        cut = max(1, int(len(w) * rate / 2))
        w = w[cut:-cut] if len(w) > 2 * cut + 5 else w
    return " ".join(w)


def shingle_set(text: str) -> set:
    w = words(text)
    return {tuple(w[i : i + N_GRAM]) for i in range(max(1, len(w) - N_GRAM + 1))}


def jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y) if x | y else 1.0


def correctness(paras: list[str], threshold: float = 0.8) -> None:
    rng = random.Random(5)
    originals = [p for p in dict.fromkeys(paras) if len(p.split()) >= 100][:4000]
    variants, partner = [], {}
    for i in range(0, len(originals), 2):  # half of the originals get one planted variant
        kind = rng.choice(["edit", "insert", "crop"])
        rate = rng.choice([0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.4])
        variants.append((i, mutate(originals[i], rng, kind, rate)))
    docs = [Document(id=f"o{i}", text=t) for i, t in enumerate(originals)]
    docs += [Document(id=f"v{i}", text=t) for i, t in variants]  # variants come after: they are the ones removed
    for i, t in variants:
        partner[f"v{i}"] = (f"o{i}", jaccard(originals[i], t))
    text_of = {d.id: d.text for d in docs}

    pair_j = {}  # both members of a planted pair -> the pair's exact Jaccard
    for v, (o, j) in partner.items():
        pair_j[v] = pair_j[o] = j

    def detected(removed: set[str], v: str) -> bool:
        # A pair is found when either member is removed (which one depends on input order).
        return v in removed or partner[v][0] in removed

    def score(removed: set[str]) -> tuple[float, float]:
        should = [v for v, (_, j) in partner.items() if j >= threshold]
        ok = {r for r in removed if pair_j.get(r, 0.0) >= threshold}
        # A removed document outside the planted pairs is right only if it really has a twin
        # with Jaccard >= threshold (accidental duplicates in the source text).
        others = [d for d in text_of if d not in pair_j]
        ok |= {r for r in removed - set(pair_j)
               if any(jaccard(text_of[r], text_of[o]) >= threshold for o in others if o != r)}
        precision = len(ok) / len(removed) if removed else 1.0
        recall = sum(detected(removed, v) for v in should) / len(should) if should else 1.0
        return precision, recall

    shards = [docs[k::4] for k in range(4)]
    results = []
    for name, verify in (("winnow (verify_threshold 0.8, default)", 0.8), ("winnow (buckets only, as datatrove)", None)):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            kept, _, _ = dedup_in_process(shards, tmp, DedupConfig(exact=False, verify_threshold=verify))
            results.append((name, {d.id for d in docs} - {d.id for s in kept for d in s}, time.perf_counter() - t0))
    w_removed = results[0][1]
    dt_removed, t_dt = datatrove_dedup(shards)
    results.append(("datatrove minhash (4 stages)", dt_removed, t_dt))
    rows = []
    for name, removed, secs in results:
        p, r = score(removed)
        rows.append({"pipeline": name, "removed": len(removed), "precision": f"{p:.3f}", "recall": f"{r:.3f}",
                     "seconds": f"{secs:.1f}"})
    js = np.array([j for _, j in partner.values()])
    buckets = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)]
    curve = []
    for lo, hi in buckets:
        sel = [v for v, (_, j) in partner.items() if lo <= j < hi]
        curve.append({"planted Jaccard": f"[{lo:.1f}, {min(hi, 1.0):.1f})", "pairs": len(sel),
                      "winnow detected": f"{sum(detected(w_removed, v) for v in sel) / max(1, len(sel)):.2f}",
                      "winnow, buckets only": f"{sum(detected(results[1][1], v) for v in sel) / max(1, len(sel)):.2f}",
                      "datatrove detected": f"{sum(detected(dt_removed, v) for v in sel) / max(1, len(sel)):.2f}"})
    print(f"\nCorrectness: {len(originals):,} real paragraphs (>= 100 words) + {len(variants):,} planted variants "
          f"(edits, insertions, crops; exact 5-gram Jaccard {js.min():.2f}-{js.max():.2f}); a removal is right when "
          f"the document has a twin with Jaccard >= {threshold}\n")
    print(markdown_table(rows))
    print()
    print(markdown_table(curve))


def datatrove_dedup(shards: list[list[Document]]) -> tuple[set[str], float]:
    """datatrove's 4-stage MinHash pipeline on the same shards (one JSONL file per shard)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input"
        src.mkdir()
        for k, shard in enumerate(shards):
            with open(src / f"{k:05d}.jsonl", "w") as fh:
                for d in shard:
                    fh.write(json.dumps({"id": d.id, "text": d.text}) + "\n")
        script = f"""
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
    MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
if __name__ == "__main__":
    cfg = MinhashConfig(n_grams={N_GRAM}, num_buckets={BANDS}, hashes_per_bucket={ROWS})
    t = "{tmp}"
    n = {len(shards)}
    LocalPipelineExecutor([JsonlReader(t + "/input"), MinhashDedupSignature(t + "/sigs", config=cfg)],
                          tasks=n, workers=1, logging_dir=t + "/l1").run()
    LocalPipelineExecutor([MinhashDedupBuckets(t + "/sigs", t + "/buckets", config=cfg)],
                          tasks=cfg.num_buckets, workers=1, logging_dir=t + "/l2").run()
    LocalPipelineExecutor([MinhashDedupCluster(t + "/buckets", t + "/remove", config=cfg)],
                          tasks=1, workers=1, logging_dir=t + "/l3").run()
    LocalPipelineExecutor([JsonlReader(t + "/input"), MinhashDedupFilter(t + "/remove"),
                           JsonlWriter(t + "/output", compression=None)],
                          tasks=n, workers=1, logging_dir=t + "/l4").run()
"""
        (Path(tmp) / "run.py").write_text(script)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(Path(tmp) / "run.py")], check=True, capture_output=True, cwd=tmp)
        secs = time.perf_counter() - t0
        kept = set()
        for path in (Path(tmp) / "output").glob("*.jsonl"):
            kept |= {json.loads(line)["id"] for line in open(path)}
    return {d.id for s in shards for d in s} - kept, secs


# ------------------------------------------------------------------------- connected components

def cc_scale(n_docs: int = 10_000_000, n_pairs: int = 5_000_000) -> None:
    """Simulated band outputs for 10M documents with 5M duplicate pairs spread over 14 bands:
    the distributed connected components (rounds of partition tasks, here run one after the
    other in one process) against scipy over every edge at once (``components_in_memory``,
    what dedup.single_task_below uses), each in its own process for its peak RSS."""
    def run(kind: str) -> list[str]:
        script = f"""
import resource, time, math, numpy as np, pyarrow as pa, tempfile
from winnow.storage import write_table_atomic
from winnow.tasks.dedup.components import components_in_memory, connected_components
from winnow.tasks.dedup.config import DedupConfig, cc_parts
from winnow.tasks.dedup.layout import COMPONENT_SCHEMA, NEW
rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as work:
    paths, edges = [], 0
    per_band = {n_pairs} // 14
    for band in range(14):
        # ids as the pipeline makes them: NEW | shard << 32 | row, 10 shards of 1M documents
        u = rng.integers(0, {n_docs}, per_band, dtype=np.uint64)
        v = rng.integers(0, {n_docs}, per_band, dtype=np.uint64)
        u = NEW | ((u // 1_000_000) << np.uint64(32)) | (u % 1_000_000)
        v = NEW | ((v // 1_000_000) << np.uint64(32)) | (v % 1_000_000)
        docs = np.concatenate([u, v]); roots = np.concatenate([np.minimum(u, v), np.minimum(u, v)])
        path = f"{{work}}/components/band={{band:02d}}.parquet"
        write_table_atomic(pa.table({{"doc": docs, "root": roots}}, schema=COMPONENT_SCHEMA), path)
        paths.append(path); edges += len(docs)
    shards = math.ceil({n_docs} / 1_000_000)
    n_parts = cc_parts(DedupConfig(), edges)
    t0 = time.perf_counter()
    if {kind!r} == "distributed":
        summary = connected_components(paths, work, n_parts, shards)
    else:
        summary = components_in_memory(paths, shards, work + "/clusters")
    dt = time.perf_counter() - t0
    print("RESULT", dt, summary["clusters"], summary["documents_in_clusters"], summary.get("rounds", 1), n_parts,
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        return out.split("RESULT")[1].split()

    rows = []
    for kind in ("distributed", "in memory (scipy, one task)"):
        secs, clusters, in_clusters, rounds, n_parts, rss = run(kind.split()[0])
        rows.append({"components": kind, "partitions": n_parts if kind == "distributed" else 1,
                     "rounds": rounds if kind == "distributed" else "-", "seconds": f"{float(secs):.1f}",
                     "clusters": f"{int(clusters):,}", "documents in clusters": f"{int(in_clusters):,}",
                     "process peak RSS MB": f"{float(rss):,.0f}"})
    print(f"\nConnected components: {n_docs:,} documents, {n_pairs:,} duplicate pairs over 14 bands (the "
          f"distributed rounds run one after the other in one process here; in a run each partition is a "
          f"task, and benchmarks/scale_dedup.py measures the largest task at 1M-50M documents):\n")
    print(markdown_table(rows))


# --------------------------------------------------------------------------------- end to end

def e2e(paras: list[str], sizes=(100_000, 1_000_000)) -> None:
    rows = []
    for n in sizes:
        script = f"""
import resource, time, sys, tempfile, random
sys.path.insert(0, {str(REPO / 'benchmarks')!r})
from dedup import real_paragraphs, windows
from winnow.tasks.dedup.config import DedupConfig
from winnow.tasks.dedup.stage import dedup_in_process
from winnow.document import Document
paras = real_paragraphs()
texts = windows(paras, {n}, 1)
shard_size = 50_000
shards = [[Document(id=str(k + i), text=t) for i, t in enumerate(texts[k:k + shard_size])]
          for k in range(0, len(texts), shard_size)]
del texts
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    kept, summary, stats = dedup_in_process(shards, tmp, DedupConfig())
    dt = time.perf_counter() - t0
print("RESULT", dt, stats.docs_in, stats.docs_out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, base / 1024)
"""
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        dt, d_in, d_out, rss, base = out.split("RESULT")[1].split()
        rows.append({"documents": f"{int(d_in):,}", "kept": f"{int(d_out):,}", "wall s": f"{float(dt):.1f}",
                     "docs/s": f"{int(d_in) / float(dt):,.0f}", "peak RSS MB": f"{float(rss):,.0f}",
                     "of which input documents held in memory": f"{float(base):,.0f}"})
    print("\nEnd-to-end dedup in one process (all four stages, shards of 50k documents; the input documents "
          "are held in memory by this harness, the pipeline itself streams per shard/band):\n")
    print(markdown_table(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="speed,correctness,cc,e2e")
    ap.add_argument("--e2e-sizes", default="100000,1000000", help="documents of the end-to-end runs (quick check: 20000)")
    ap.add_argument("--cc-docs", type=int, default=10_000_000, help="documents of the components run")
    ap.add_argument("--cc-pairs", type=int, default=5_000_000, help="duplicate pairs of the components run")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    paras = real_paragraphs()
    print(f"{len(paras):,} real paragraphs from ../shared/data/text")
    if "correctness" in sections:
        correctness(paras)
    if "cc" in sections:
        cc_scale(args.cc_docs, args.cc_pairs)
    if "e2e" in sections:
        e2e(paras, tuple(int(n) for n in args.e2e_sizes.split(",")))
    if "speed" in sections:
        speed(paras)


if __name__ == "__main__":
    main()
