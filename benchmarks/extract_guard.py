"""Cost of ingest's per-page guard (winnow.sandbox) on ordinary pages: the real ingest stage over
the shared WARCs, once with pages decoded and extracted in this process (as before the guard)
and once in the guard's worker process, alternating, in the same run.

The guard's cost per page is two pipe transfers (the body there, the text back) and two
pickles; its start-up (a Python interpreter importing the extractor) is paid once per shard
reader and reported apart: on a Common Crawl WARC (about 40,000 pages) it is noise.

    python benchmarks/extract_guard.py [--rounds 3] [--copies 2] [--extractor resiliparse]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, cast

from _common import machine, markdown_table, shared_data

from winnow.extract import extract_page
from winnow.sandbox import Sandbox
from winnow.stats import StageStats
from winnow.tasks.ingest import IngestConfig, extraction_sandbox, ingest_warc
from winnow.warc import iter_http_responses


class Inline:
    """The per-page work in this process, without bounds: the baseline."""

    def __call__(self, body: bytes, charset: str | None, extractor: str) -> tuple[str, str, dict[str, int]]:
        return extract_page(body, charset, extractor)


def one_pass(files: list[Path], cfg: IngestConfig, extract: Any) -> tuple[float, list[tuple[str, str]]]:
    t0 = time.perf_counter()
    out = []
    for path in files:
        out += [(d.id, d.text) for d in ingest_warc(str(path), cfg, StageStats(), sandbox=cast(Sandbox, extract))]
    return time.perf_counter() - t0, out


def round_trip(files: list[Path]) -> tuple[int, float]:
    """The guard's own cost, without extraction: every body to a worker that only measures it."""
    bodies = []
    for path in files:
        with open(path, "rb") as fh:
            bodies += [r.body for r in iter_http_responses(fh, StageStats(), str(path), 10_000_000) if r.body]
    with Sandbox("builtins:len", timeout_s=60) as sb:
        sb(b"")
        t0 = time.perf_counter()
        for body in bodies:
            sb(body)
        return len(bodies), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--copies", type=int, default=2, help="passes over the WARCs per timed run")
    ap.add_argument("--extractor", default="resiliparse")
    args = ap.parse_args()
    files = sorted(p for p in (shared_data() / "warc").glob("*.warc*")
                   if not p.name.endswith((".wet.gz", ".wat.gz"))) * args.copies
    cfg = IngestConfig(extractor=args.extractor)
    guard = extraction_sandbox(cfg)
    t0 = time.perf_counter()
    guard(b"<p>start</p>", None, args.extractor)
    startup = time.perf_counter() - t0
    inline = Inline()
    inline(b"<p>start</p>", None, args.extractor)  # imports, as the worker's warm-up does
    times: dict[str, list[float]] = {"inline": [], "guarded": []}
    texts = {}
    with guard:
        for _ in range(args.rounds):
            for name, extract in (("inline", inline), ("guarded", guard)):
                took, texts[name] = one_pass(files, cfg, extract)
                times[name].append(took)
    assert texts["inline"] == texts["guarded"], "the guard changed the output"
    best = {k: min(v) for k, v in times.items()}
    total = {k: sum(v) for k, v in times.items()}
    pages = len(texts["inline"])
    print(f"# extraction guard cost ({machine()}; {args.extractor}; {pages} documents per pass, "
          f"{len(files)} files; {args.rounds} rounds)\n")
    print(markdown_table([
        {"mode": k, "best pass (s)": f"{best[k]:.3f}", "all passes (s)": f"{total[k]:.3f}",
         "per document (ms)": f"{1000 * best[k] / pages:.3f}"} for k in times]))
    print(f"\nguarded / inline, best pass: {best['guarded'] / best['inline']:.3f}; "
          f"all passes: {total['guarded'] / total['inline']:.3f}")
    print(f"worker start-up (once per shard reader): {startup:.3f} s")
    n, took = round_trip(files)
    print(f"round trip alone (pipe + pickle, no extraction): {n} bodies in {took:.3f} s, "
          f"{1e6 * took / n:.0f} us per body")


if __name__ == "__main__":
    main()
