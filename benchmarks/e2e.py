"""End to end against datatrove on the same crawl: WARC -> text -> LID (en) -> Gopher + C4 +
FineWeb quality -> MinHash dedup -> Parquet, same number of workers.

Input: the shared WARCs, replicated until the input reaches --target-mb. Copy 0 of each file
is the original; in copies 1.. every HTML page has 2% of its words replaced (seeded), so
replicated pages are near-duplicates (never exact ones) of their original, and the ground
truth is known: each URL should survive once. `transfer-compression-brotli.warc.gz` is left
out of the shared input (datatrove's reader raises on it and abandons the run) and checked
separately.

    python benchmarks/e2e.py [--target-mb 200] [--workers 2] [--profile]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import REPO, machine, markdown_table, shared_data

CRASHER = "transfer-compression-brotli.warc.gz"
_TEXT_NODE = re.compile(r">([^<>]{20,})<")


def mutate_html(html: str, rng: random.Random, rate: float = 0.02) -> str:
    def edit(m: re.Match) -> str:
        words = m.group(1).split(" ")
        for _ in range(max(1, int(len(words) * rate))):
            if rng.random() < 0.5:
                words[rng.randrange(len(words))] = rng.choice(["lorem", "ipsum", "dolor", "amet"])
        return ">" + " ".join(words) + "<"

    return _TEXT_NODE.sub(edit, html)


def build_input(dest: Path, target_mb: float) -> tuple[list[Path], int]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from winnow.charset import decode_html
    from winnow.stats import StageStats
    from winnow.storage import open_binary
    from winnow.warc import iter_http_responses

    stamp = dest / "_built.json"
    if stamp.exists():  # --keep: reuse the input built by an earlier run
        built = json.loads(stamp.read_text())
        if built["target_mb"] == target_mb:
            return [Path(f) for f in built["files"]], built["n_html"]
    src = sorted(p for p in (shared_data() / "warc").glob("*.warc*")
                 if not p.name.endswith((".wet.gz", ".wat.gz")) and p.name != CRASHER)
    dest.mkdir(parents=True, exist_ok=True)
    files, total, copy = [], 0, 0
    pages: dict[Path, list] = {}
    for p in src:
        with open_binary(str(p)) as fh:
            pages[p] = [r for r in iter_http_responses(fh, StageStats(), str(p), 50_000_000)
                        if not r.problem and r.status == 200 and r.mime == "text/html"]
    n_html = 0
    while total < target_mb * 1e6:
        for p in src:
            if copy == 0:
                target = dest / f"c000-{p.name}"
                shutil.copyfile(p, target)
            else:
                target = dest / f"c{copy:03d}-{p.name.split('.warc')[0]}.warc.gz"
                rng = random.Random(f"{copy}:{p.name}")
                with open(target, "wb") as out:
                    writer = WARCWriter(out, gzip=True)
                    for r in pages[p]:
                        html, _ = decode_html(r.body, r.charset)
                        body = mutate_html(html, rng).encode("utf-8")
                        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                                   protocol="HTTP/1.1")
                        rec = writer.create_warc_record(r.url, "response", payload=__import__("io").BytesIO(body),
                                                        http_headers=headers)
                        writer.write_record(rec)
            n_html += len(pages[p])
            files.append(target)
            total += target.stat().st_size
        copy += 1
    stamp.write_text(json.dumps({"target_mb": target_mb, "files": [str(f) for f in files], "n_html": n_html}))
    return files, n_html


class PeakRSS:
    """Peak of the summed RSS of a process and its descendants, sampled every 0.2 s."""

    def __init__(self, pid: int, exclude: set[int] | None = None) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.exclude = exclude or set()
        self.peak = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop:
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
                rss = sum(p.memory_info().rss for p in procs if p.pid not in self.exclude)
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    def stop(self) -> float:
        self._stop = True
        self.thread.join()
        return self.peak / 1e6


DATATROVE = """
import glob, os, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
    MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
    GopherRepetitionFilter, LanguageFilter)
from datatrove.pipeline.readers import JsonlReader, WarcReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter
from datatrove.utils.lid import FT176LID

class LocalFT176(FT176LID):
    # datatrove downloads lid.176.bin; use the same bundled model file as winnow instead.
    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText
            self._model = _FastText({model!r})
        return self._model

if __name__ == "__main__":
    src, out, workers = {src!r}, {out!r}, {workers}
    n = len(glob.glob(os.path.join(src, "*.warc*")))
    lang = LanguageFilter(languages=["en"], language_threshold=0.65)
    lang.model = LocalFT176(["en"])
    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    LocalPipelineExecutor([WarcReader(src, glob_pattern="*.warc*"), Trafilatura(favour_precision=True), lang,
                           GopherRepetitionFilter(), GopherQualityFilter(),
                           C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(),
                           JsonlWriter(out + "/filtered")],
                          tasks=n, workers=workers, logging_dir=out + "/l1").run()
    # Signatures and the final filter read the same files with the same task count, so the
    # document indices datatrove's dedup uses line up (tasks that wrote nothing leave no file).
    m = len(glob.glob(out + "/filtered/*"))
    LocalPipelineExecutor([JsonlReader(out + "/filtered"), MinhashDedupSignature(out + "/sigs", config=cfg)],
                          tasks=m, workers=workers, logging_dir=out + "/l1b").run()
    LocalPipelineExecutor([MinhashDedupBuckets(out + "/sigs", out + "/buckets", config=cfg)],
                          tasks=cfg.num_buckets, workers=workers, logging_dir=out + "/l2").run()
    LocalPipelineExecutor([MinhashDedupCluster(out + "/buckets", out + "/remove", config=cfg)],
                          tasks=1, workers=1, logging_dir=out + "/l3").run()
    LocalPipelineExecutor([JsonlReader(out + "/filtered"), MinhashDedupFilter(out + "/remove"),
                           ParquetWriter(out + "/output")], tasks=m, workers=workers, logging_dir=out + "/l4").run()
"""


def run_datatrove(src: Path, out: Path, workers: int) -> dict:
    from winnow.filters.lid import bundled

    shutil.rmtree(out, ignore_errors=True)
    script = out.parent / "datatrove_run.py"
    out.mkdir(parents=True, exist_ok=True)
    script.write_text(DATATROVE.format(model=str(bundled("lid.176.ftz")), src=str(src), out=str(out), workers=workers))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script)], cwd=out.parent, stdout=subprocess.DEVNULL,
                            stderr=open(out / "stderr.log", "w"))
    rss = PeakRSS(proc.pid)
    rc = proc.wait()
    wall = time.perf_counter() - t0
    import pyarrow.parquet as pq

    docs = sum(pq.read_metadata(p).num_rows for p in glob.glob(str(out / "output" / "*.parquet")))
    return {"wall": wall, "docs": docs, "rss": rss.stop(), "rc": rc}


def run_winnow(src: Path, out: Path, workers: int, api_url: str, extractor: str = "resiliparse") -> dict:
    shutil.rmtree(out, ignore_errors=True)  # a kept work folder must not resume an earlier run
    cfg = out.parent / f"winnow-{extractor}.yaml"
    cfg.write_text(json.dumps({
        "input": [str(src)], "output": str(out),
        "runner": {"kind": "processes", "workers": workers, "retries": 0},
        # The replicated input is 456 small files: group them so tasks are not mostly scheduling,
        # in shards small enough (~26) that the last ones do not leave a worker idle for long.
        "shard_size_mb": 8,
        "ingest": {"extractor": extractor},
        "lid": {"keep": ["en"], "threshold": 0.65},
        "quality": {"mode": "filter"},
        # datatrove's pipeline has no candidate verification: compare like with like.
        "dedup": {"enabled": True, "verify_threshold": None, "exact": False},
    }))
    env = {**os.environ, "PREFECT_API_URL": api_url}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "winnow"), "run", str(cfg)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(out.parent / f"winnow-{extractor}.log", "w"))
    rss = PeakRSS(proc.pid)
    rc = proc.wait()
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text()) if rc == 0 else {}
    docs = summary.get("stages", {}).get("dedup", {}).get("docs_out", 0)
    return {"wall": wall, "docs": docs, "rss": rss.stop(), "rc": rc, "summary": summary}


def start_prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("prefect server did not start")


def profile_winnow(files: list[Path], tmp: Path) -> None:
    import cProfile
    import pstats

    from winnow.inputs import list_inputs
    from winnow.tasks.pipeline import WinnowConfig
    from winnow.tasks.shard import ShardJob, ShardPlan, process_shard

    shutil.rmtree(tmp / "prof", ignore_errors=True)  # a kept work folder: profile real work, not skips
    cfg = WinnowConfig.model_validate({"input": [str(f) for f in files[:40]], "output": str(tmp / "prof"),
                                       "lid": {"keep": ["en"], "threshold": 0.65}})
    plan = ShardPlan.from_config(cfg)
    listed = {f.path: f for f in list_inputs(cfg.input).files}
    inputs = [listed[str(f)] for f in files[:40]]
    # Warm up first (imports, spaCy and model loading): the profile is of steady-state work.
    process_shard(ShardJob(0, (inputs[0],), str(tmp / "prof" / "warmup.parquet")), plan)
    sample = inputs[1:40]
    prof = cProfile.Profile()
    prof.enable()
    for k, f in enumerate(sample):
        process_shard(ShardJob(k, (f,), str(tmp / "prof" / f"part-{k:05d}.parquet")), plan)
    prof.disable()
    print(f"\nProfile of winnow's per-shard work (ingest + lid + quality), {len(sample)} files after a warm-up, "
          "top functions by own time:\n")
    stats = pstats.Stats(prof)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]
    total = sum(v[2] for v in stats.stats.values())
    print(markdown_table([{"function": f"{Path(k[0]).name}:{k[2]}", "own s": f"{v[2]:.2f}",
                           "share": f"{100 * v[2] / total:.1f}%", "calls": f"{v[1]:,}"} for k, v in rows]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-mb", type=float, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--same-extractor", action="store_true", help="also run winnow with trafilatura")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keep", help="keep the work folder here")
    ap.add_argument("--winnow-only", action="store_true", help="skip datatrove (while tuning winnow)")
    args = ap.parse_args()
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="winnow-e2e-"))
    src = tmp / "warc"
    files, n_html = build_input(src, args.target_mb)
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"input: {len(files)} WARC files, {mb:.0f} MB, {n_html:,} HTML pages ({machine()}, {args.workers} workers)")
    if args.profile:
        profile_winnow(files, tmp)
    server, url = start_prefect_server(tmp / "prefect-home")
    try:
        results = {"winnow": run_winnow(src, tmp / "out-winnow", args.workers, url)}
        if args.same_extractor:
            results["winnow (trafilatura)"] = run_winnow(src, tmp / "out-winnow-traf", args.workers, url, "trafilatura")
    finally:
        server.terminate()
    if not args.winnow_only:
        results["datatrove"] = run_datatrove(src, tmp / "out-datatrove", args.workers)
    base = results.get("datatrove", results["winnow"])
    rows = []
    for name, r in results.items():
        rows.append({"pipeline": name, "exit": r["rc"], "docs out": f"{r['docs']:,}", "wall s": f"{r['wall']:.0f}",
                     "pages/s": f"{n_html / r['wall']:.1f}", "MB/s WARC": f"{mb / r['wall']:.2f}",
                     "peak RSS MB": f"{r['rss']:,.0f}", "speed vs datatrove": f"{base['wall'] / r['wall']:.1f}x"})
    print()
    print(markdown_table(rows))
    w = results["winnow"].get("summary", {}).get("stages", {})
    if w:
        print("\nwinnow funnel: " + ", ".join(f"{k} {v['docs_in']:,} -> {v['docs_out']:,}" for k, v in w.items()))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
