"""Quality and LID stage throughput against datatrove on the same documents, same run, and the
agreement of their keep/drop decisions; validation precision/recall of a trained classifier.

Documents: the 127 human-extracted article bodies of ../shared/data/html (about 4,500
characters each) plus 4,400-character windows of the English Gutenberg books (hard line
wraps undone). Everything runs in this process on one core.

    python benchmarks/quality.py [--max-docs 2000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import time

from _common import machine, markdown_table, pin_to_one_core, shared_data

from winnow.document import Document
from winnow.filters.lid import bundled
from winnow.stage import StageEnv
from winnow.stats import StageStats
from winnow.tasks.lid import LidConfig, LidStage
from winnow.tasks.quality import QualityConfig, QualityStage

# The configuration the README's figures were measured with: English rules and word splitting for
# every document (per_language off: these documents carry no LID label anyway), every rule set;
# write_rejected so that the stage reports each dropped document's reason to the callback.
QUALITY = QualityConfig(per_language=False, write_rejected=True)


def corpus(max_docs: int) -> list[str]:
    data = shared_data()
    texts = [json.loads(line)["text"] for line in open(data / "html" / "ground_truth.jsonl", encoding="utf-8")]
    for path in sorted((data / "text" / "gutenberg").glob("*.txt.gz")):
        book = re.sub(r"(?<!\n)\n(?!\n)", " ", gzip.open(path, "rt", encoding="utf-8").read())
        texts += [book[i : i + 4400] for i in range(0, len(book) - 4400, 4400)]
    random.Random(0).shuffle(texts)
    return texts[:max_docs]


def datatrove_quality(texts: list[str]) -> tuple[list[str], float]:
    from datatrove.data import Document as DTDocument
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    rules = [("gopher_repetition", GopherRepetitionFilter()), ("gopher_quality", GopherQualityFilter()),
             ("c4", C4QualityFilter(filter_no_terminal_punct=False)), ("fineweb", FineWebQualityFilter())]
    rules[0][1].filter(DTDocument(text="warm up spaCy once.", id="w"))
    out = []
    t0 = time.perf_counter()
    for t in texts:
        doc, verdict = DTDocument(text=t, id=""), "keep"
        for name, rule in rules:
            r = rule.filter(doc)
            if r is not True and r is not None and not (r[0] if isinstance(r, tuple) else r):
                verdict = f"{name}:{r[1] if isinstance(r, tuple) else name}"
                break
        out.append(verdict)
    return out, time.perf_counter() - t0


def winnow_quality(texts: list[str]) -> tuple[list[str], float]:
    verdicts: dict[str, str] = {}
    docs = [Document(id=str(i), text=t) for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    # Built inside the timing, as the stage is per shard (the spaCy chunk cache is per process:
    # the first call runs cold, the second warm).
    stage = QualityStage(QUALITY, StageEnv())
    kept = {d.id for d in stage.run(docs, StageStats(),
                                    on_reject=lambda _stage, d, reason: verdicts.__setitem__(d.id, reason))}
    dt = time.perf_counter() - t0
    return [("keep" if str(i) in kept else verdicts[str(i)]) for i in range(len(texts))], dt



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-docs", type=int, default=2000)
    args = ap.parse_args()
    pin_to_one_core()
    texts = corpus(args.max_docs)
    chars = sum(map(len, texts)) / len(texts)

    dt_verdicts, dt_time = datatrove_quality(texts)
    w_verdicts, w_time = winnow_quality(texts)
    _, w_time_warm = winnow_quality(texts)
    agree = sum((a == "keep") == (b == "keep") for a, b in zip(dt_verdicts, w_verdicts)) / len(texts)
    same_reason = sum(a == b for a, b in zip(dt_verdicts, w_verdicts)) / len(texts)
    rows = [
        {"stage": "quality (4 rule sets)", "engine": "datatrove", "docs/s (1 core)": f"{len(texts) / dt_time:.1f}",
         "ms/doc": f"{1000 * dt_time / len(texts):.2f}", "vs datatrove": "1.0x"},
        {"stage": "quality (4 rule sets)", "engine": "winnow, cold cache", "docs/s (1 core)": f"{len(texts) / w_time:.1f}",
         "ms/doc": f"{1000 * w_time / len(texts):.2f}", "vs datatrove": f"{dt_time / w_time:.1f}x"},
        {"stage": "quality (4 rule sets)", "engine": "winnow, warm cache", "docs/s (1 core)": f"{len(texts) / w_time_warm:.1f}",
         "ms/doc": f"{1000 * w_time_warm / len(texts):.2f}", "vs datatrove": f"{dt_time / w_time_warm:.1f}x"},
    ]

    # Language ID, same model file, same documents.
    from datatrove.data import Document as DTDocument
    from datatrove.pipeline.filters import LanguageFilter
    from fasttext.FastText import _FastText

    lf = LanguageFilter(languages=["en"], language_threshold=0.65)
    lf.model._model = _FastText(str(bundled("lid.176.ftz")))
    t0 = time.perf_counter()
    dt_lid = [bool(lf.filter(DTDocument(text=t, id=""))) for t in texts]
    dt_lid_time = time.perf_counter() - t0
    kept_ids: set[str] = set()
    t0 = time.perf_counter()
    lid = LidStage(LidConfig(keep=["en"], threshold=0.65), StageEnv())
    for d in lid.run([Document(id=str(i), text=t) for i, t in enumerate(texts)], StageStats()):
        kept_ids.add(d.id)
    w_lid_time = time.perf_counter() - t0
    lid_agree = sum(dt_lid[i] == (str(i) in kept_ids) for i in range(len(texts))) / len(texts)
    rows += [
        {"stage": "lid (en, 0.65)", "engine": "datatrove LanguageFilter", "docs/s (1 core)": f"{len(texts) / dt_lid_time:.0f}",
         "ms/doc": f"{1000 * dt_lid_time / len(texts):.2f}", "vs datatrove": "1.0x"},
        {"stage": "lid (en, 0.65)", "engine": "winnow", "docs/s (1 core)": f"{len(texts) / w_lid_time:.0f}",
         "ms/doc": f"{1000 * w_lid_time / len(texts):.2f}", "vs datatrove": f"{dt_lid_time / w_lid_time:.1f}x"},
    ]
    print(f"\n{len(texts)} documents, {chars:,.0f} characters on average ({machine()})\n")
    print(markdown_table(rows))
    print(f"\nquality keep/drop agreement with datatrove: {agree:.4f} (same first failing rule: {same_reason:.4f}); "
          f"kept: datatrove {dt_verdicts.count('keep')}, winnow {w_verdicts.count('keep')}")
    print(f"lid keep/drop agreement with datatrove: {lid_agree:.4f}")
    disagreements = [(a, b) for a, b in zip(dt_verdicts, w_verdicts) if a != b]
    if disagreements:
        print("quality disagreements (datatrove, winnow):", disagreements[:10])
    classifier_validation(texts)


def classifier_validation(texts: list[str]) -> None:
    """Train on clean text vs boilerplate-heavy full-page text; report the held-out split."""
    import tempfile

    from resiliparse.extract.html2text import extract_plain_text

    from winnow.charset import decode_html
    from winnow.filters.quality_classifier import train

    data = shared_data() / "html"
    pages = sorted((data / "pages").glob("*.html.gz")) + sorted((data / "trafilatura_eval" / "pages").glob("*.html.gz"))
    negatives = []
    for path in pages:
        full = extract_plain_text(decode_html(gzip.open(path).read(), None)[0], main_content=False)
        negatives += [full[i : i + 2000] for i in range(0, len(full), 2000) if len(full[i : i + 2000]) > 200]
    positives = [t[:2000] for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        report = train(positives, negatives, f"{tmp}/q.bin", valid_fraction=0.2, seed=0)
    print(f"\nquality classifier (positives: {len(positives)} article/book texts; negatives: {len(negatives)} "
          f"2,000-char windows of full-page text incl. navigation, {len(pages)} pages): held-out "
          f"{report.valid_examples} examples: precision {report.precision:.3f}, recall {report.recall:.3f}, "
          f"F1 {report.f1:.3f}, accuracy {report.accuracy:.3f}")


if __name__ == "__main__":
    main()
