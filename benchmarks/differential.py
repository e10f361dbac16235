"""winnow against datatrove on all the shared text: quality decisions per English rule set, and PII spans.

Every WARC page's extracted text, the article bodies, 4,400-character windows of every shared
book and every line of the LID dev set (tests/helpers/differential.py says how each side runs).
Prints, per corpus and rule set: documents, agree, disagree (a decision, or C4's filtered text);
for PII: documents with equal spans, and each span only one side masks with the deliberate
difference behind it ("unexplained" where none applies). tests/peer/test_differential.py checks
the same on a deterministic subsample in CI.

    python benchmarks/differential.py [--every 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict

from _common import REPO, machine, markdown_table, shared_data


def main() -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import differential as dif

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, default=1, help="take every n-th document (1: all)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    docs = [d for i, d in enumerate(dif.corpora(shared_data())) if i % args.every == 0]
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    examples: list[tuple[str, str, object, object, str]] = []
    pii: dict[str, Counter[str]] = defaultdict(Counter)
    pii_diffs: Counter[tuple[str, str | None]] = Counter()
    unexplained: list[tuple[str, str, str]] = []
    span_counts: Counter[str] = Counter()
    for corpus, text in docs:
        for name, (theirs, ours) in dif.quality_decisions(text).items():
            for key in (corpus, "all"):
                counts[(key, name)]["docs"] += 1
                counts[(key, name)]["agree" if theirs == ours else "disagree"] += 1
            if theirs != ours and len(examples) < 10:
                examples.append((corpus, name, theirs[0], ours[0], text[:100]))
        theirs_pii, ours_pii, diffs = dif.pii_differences(text)
        span_counts["datatrove"] += len(theirs_pii)
        span_counts["winnow"] += len(ours_pii)
        span_counts["both"] += len(theirs_pii & ours_pii)
        for key in (corpus, "all"):
            pii[key]["docs"] += 1
            pii[key]["equal" if not diffs else "differ"] += 1
        for side, value, reason in diffs:
            pii_diffs[(side, reason)] += 1
            if reason is None:
                unexplained.append((corpus, side, value))
    rows = [{"corpus": c, "rule set": n, "documents": v["docs"], "agree": v["agree"], "disagree": v["disagree"],
             "agreement": f"{v['agree'] / v['docs']:.2%}"} for (c, n), v in sorted(counts.items())]
    rows += [{"corpus": c, "rule set": "pii spans (email, ip)", "documents": v["docs"], "agree": v["equal"],
              "disagree": v["differ"], "agreement": f"{v['equal'] / v['docs']:.2%}"} for c, v in sorted(pii.items())]
    print(f"\n{len(docs)} documents (every {args.every}), {time.perf_counter() - t0:.0f} s ({machine()})\n")
    print(markdown_table(rows))
    print(f"\nPII spans: datatrove {span_counts['datatrove']}, winnow {span_counts['winnow']}, "
          f"the same span {span_counts['both']}")
    print("\nPII spans only one side masks, by deliberate difference:")
    print(markdown_table([{"side": s, "difference": r or "UNEXPLAINED", "spans": n}
                          for (s, r), n in sorted(pii_diffs.items(), key=lambda x: -x[1])] or
                         [{"side": "-", "difference": "none", "spans": 0}]))
    for e in examples:
        print("quality disagreement:", e)
    for u in unexplained[:20]:
        print("unexplained PII difference:", u)


if __name__ == "__main__":
    main()
