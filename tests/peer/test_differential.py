"""winnow's decisions and PII spans against datatrove's on the shared text (tests/helpers/differential.py).

Quality: every English rule set must decide as datatrove does (and C4 leave the same text) on every
document of a deterministic subsample: every 8th document of the shared corpora in their fixed
order (about 1,270 of 10,140; ``benchmarks/differential.py`` runs all of them). PII: every document;
each span only one side masks must be one of the listed deliberate differences.
"""

from __future__ import annotations

from collections import Counter

import pytest
from helpers import differential as dif

EVERY = 8


@pytest.fixture(scope="module")
def docs(shared_data) -> list[tuple[str, str]]:
    return list(dif.corpora(shared_data))


def test_quality_rule_sets_decide_as_datatrove(docs):
    sample = docs[::EVERY]
    seen: Counter[str] = Counter()
    differ = []
    for corpus, text in sample:
        seen[corpus] += 1
        for name, (theirs, ours) in dif.quality_decisions(text).items():
            if theirs != ours:
                differ.append((corpus, name, theirs[0], ours[0], text[:80]))
    assert set(seen) == {"warc", "articles", "prose", "lid_dev"} and len(sample) >= 1000, seen
    assert not differ, f"{len(differ)} decisions differ from datatrove's, e.g. {differ[:3]}"


def test_pii_spans_equal_datatrove_but_for_the_deliberate_differences(docs):
    unexplained = []
    equal = 0
    for corpus, text in docs:
        _, _, diffs = dif.pii_differences(text)
        equal += not diffs
        unexplained += [(corpus, side, value) for side, value, reason in diffs if reason is None]
    assert not unexplained, unexplained[:10]
    assert equal / len(docs) > 0.99
