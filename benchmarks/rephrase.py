"""Client overhead of the rephrasing stage's OpenAI-compatible backend.

A local server (tests/helpers/openai_server.py, in its own process) answers every request after a
fixed latency; with C requests in flight the best possible rate is C / latency. The achieved
rate, through the real client (aiohttp, asyncio, retries machinery), is reported against it.

    python benchmarks/rephrase.py [--latency 0.1] [--requests 3000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import REPO, machine, markdown_table

from winnow.rephrase_backends import OpenAIBackend

SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from openai_server import FakeLLM
llm = FakeLLM(latency={latency})
with llm:
    print(llm.base_url, flush=True)
    while True:
        time.sleep(3600)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(REPO / "tests" / "helpers"), latency=args.latency)],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        rows = []
        for concurrency in (1, 8, 64, 128):
            n = min(args.requests, max(50, int(concurrency / args.latency * 4)))
            prompts = [f"Rephrase:\n\nparagraph number {i} of the benchmark" for i in range(n)]
            backend = OpenAIBackend(url, "bench", concurrency=concurrency, timeout=30)
            backend.generate(prompts[: min(n, concurrency)])  # open the connections once
            t0 = time.perf_counter()
            out = backend.generate(prompts)
            dt = time.perf_counter() - t0
            assert all(g.text for g in out)
            bound = concurrency / args.latency
            rows.append({"concurrency": concurrency, "requests": n, "achieved req/s": f"{n / dt:,.1f}",
                         "bound C/latency": f"{bound:,.0f}", "of bound": f"{100 * n / dt / bound:.1f}%"})
        print(f"\nOpenAI-compatible client against a local server with {1000 * args.latency:.0f} ms latency "
              f"({machine()})\n")
        print(markdown_table(rows))
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
