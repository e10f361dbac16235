"""FineWeb-2's filtering step, as its pipeline runs it, beside winnow's quality rules.

The reference is step 5 of huggingface/fineweb-2 ``fineweb-2-pipeline.py`` (commit 7ee60b3, unchanged
at HEAD d0defb2; Apache-2.0), ported with only the call adapted: datatrove 0.10.1's
GopherRepetitionFilter -> FineWebQualityFilter -> GopherQualityFilter with ``language=<lang_script>``
(so datatrove picks the word tokenizer from its own assignment) and each language's values from
upstream's config, read from the frozen copy in tests/peer/data/fineweb2/upstream_configs.json, not
from winnow's bundled files. winnow's side is its quality stage's rules for that language
(``settings_for`` -> ``build_rulesets`` -> ``apply_rules``, filter mode). A decision is the first
failing rule as ``rule_set:reason`` (winnow's drop reason), or None for a kept document.

Used by tests/peer/test_fineweb2_filtering.py and benchmarks/multilingual.py (which puts tests/ on
sys.path for it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from winnow.filters.multilingual import canonical_name, settings_for
from winnow.filters.quality import apply_rules, build_rulesets

UPSTREAM = Path(__file__).resolve().parents[1] / "peer" / "data" / "fineweb2" / "upstream_configs.json"
# Languages whose FineWeb-2 decisions cannot be reproduced here, and why (deliberate, checked strictly).
NOT_COMPARABLE = {
    "hin_Deva": "datatrove splits Hindi with indic-nlp-library, which winnow does not ship (its install pulls "
                "sphinx and pandas, about 190 MB); winnow uses spaCy's hi tokenizer",
}


@cache
def upstream_configs() -> dict[str, dict[str, Any]]:
    return {name: f["values"] for name, f in json.loads(UPSTREAM.read_text("utf-8"))["files"].items()}


@cache
def datatrove_filters(lang_script: str) -> list[tuple[str, Any]]:
    """fineweb-2-pipeline.py, step 5 (the exclusion writers left out)."""
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter

    filter_config = upstream_configs()[lang_script]
    return [
        ("gopher_repetition", GopherRepetitionFilter(
            language=lang_script, dup_para_frac=0, dup_line_char_frac=0, dup_para_char_frac=0,
            dup_line_frac=filter_config["dup_line_frac"], top_n_grams=filter_config["top_n_grams"],
            dup_n_grams=filter_config["dup_n_grams"])),
        ("fineweb", FineWebQualityFilter(
            language=lang_script, short_line_thr=999, char_duplicates_ratio=0.1,
            line_punct_thr=filter_config["line_punct_thr"], new_line_ratio=filter_config["new_line_ratio"])),
        ("gopher_quality", GopherQualityFilter(
            language=lang_script, max_avg_word_length=filter_config["max_avg_word_length"],
            min_avg_word_length=filter_config["min_avg_word_length"], stop_words=filter_config["stopwords"],
            max_non_alpha_words_ratio=filter_config["max_non_alpha_words_ratio"], min_stop_words=2)),
    ]


def datatrove_decision(lang_script: str, text: str) -> str | None:
    from datatrove.data import Document

    for name, f in datatrove_filters(lang_script):
        result = f.filter(Document(text=text, id="0"))
        if result is not True:
            return f"{name}:{result[1] if isinstance(result, tuple) else 'dropped'}"
    return None


@cache
def _winnow_rules(lang_script: str) -> list[tuple[str, Any]]:
    s = settings_for(lang_script)
    return build_rulesets(list(s.rules), s.quality_params(), s.tokenizer())


def winnow_decision(lang_script: str, text: str) -> str | None:
    _, failed = apply_rules(_winnow_rules(lang_script), text, stop_at_first=True)
    return failed[0] if failed else None


# ------------------------------------------------------------------ corpora (shared/data)


def dev_rows(shared: Path) -> list[dict]:
    with open(shared / "lid" / "dev.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def dev_corpora(shared: Path) -> Iterator[tuple[str, str, str]]:
    """(corpus, FineWeb-2 config, text) of the LID dev set, by its gold label: each text alone, and
    its sentences joined ten per document (one per line), which reach the later rules."""
    sentences: dict[str, list[str]] = defaultdict(list)
    for r in dev_rows(shared):
        name = canonical_name(r["lang"])
        if name is None or name not in upstream_configs():
            continue
        yield "dev: texts", name, r["text"]
        if r["kind"] == "sentence":
            sentences[name].append(r["text"])
    for name, sents in sorted(sentences.items()):
        for i in range(0, len(sents), 10):
            yield "dev: 10 sentences/doc", name, "\n".join(sents[i : i + 10])


def warc_corpus(shared: Path) -> Iterator[tuple[str, str, str]]:
    """("WARC pages", config, text) of every page of the shared WARCs whose lid.176 label (winnow's
    LID, as the quality stage keys on it) has FineWeb-2 settings."""
    from winnow.filters.lid import FastTextLID
    from winnow.stats import StageStats
    from winnow.tasks.ingest import IngestConfig, ingest_warc

    lid = FastTextLID()
    cfg = IngestConfig()
    for path in sorted((shared / "warc").glob("*.warc*")):
        for d in ingest_warc(str(path), cfg, StageStats()):
            name = canonical_name(lid.predict(d.text)[0])
            if name is not None and name in upstream_configs():
                yield "WARC pages", name, d.text
