"""The PII stage through the contract: masked text, counters per kind, nothing dropped."""

from __future__ import annotations

import json

import pytest

from winnow.document import Document
from winnow.stage import StageEnv, StageError
from winnow.tasks.pii import PiiConfig, PiiStage


def test_masks_the_labelled_set_and_counts_per_kind(test_data, run_stage):
    rows = [json.loads(x) for x in (test_data / "pii" / "labelled.jsonl").open(encoding="utf-8")]
    docs = [Document(id=r["id"], text=r["text"]) for r in rows]
    kept, stats = run_stage(PiiStage, PiiConfig(enabled=True, kinds=["email", "ip", "phone", "card"]), docs)
    assert len(kept) == len(rows) and stats.docs_out == stats.docs_in  # masking never drops
    expected = {k: sum(1 for r in rows for s in r["spans"] if s["kind"] == k) for k in ("email", "ip", "card")}
    for kind, n in expected.items():
        assert stats.counters[f"masked:{kind}"] == n, kind
    by_id = {d.id: d for d in kept}
    one = next(r for r in rows if any(s["kind"] == "email" for s in r["spans"]))
    span = next(s for s in one["spans"] if s["kind"] == "email")
    assert one["text"][span["start"]:span["end"]] not in by_id[one["id"]].text
    assert by_id[one["id"]].text.startswith(one["text"][: span["start"]])  # the text before is kept


def test_default_kinds_are_fineweb_s_and_bad_kinds_fail_before_work():
    assert PiiConfig().kinds == ["email", "ip"]
    with pytest.raises(StageError, match="pii"):
        PiiStage.check(PiiConfig(enabled=True, replacements={"phonee": "x"}), StageEnv())
