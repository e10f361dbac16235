"""The per-document stages are linear in the text on the worst inputs we know (one 250k-char
word, newlines, digits, at-signs, dotted numbers, repetition): each finishes within a stated
time, and 4x the text takes about 4x the time, not 16x. Together with the text caps (ingest:
1M chars; quality drops texts over 2M untokenized; LID reads 10k) this is their time bound.
Measured on 2 shared cores: the slowest case, quality on "1.1.1.1...", is 1.5 s per 250k chars."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from winnow.document import Document
from winnow.stage import StageEnv
from winnow.stats import StageStats
from winnow.tasks.decontam import DecontamConfig, DecontamStage
from winnow.tasks.lid import LidConfig, LidStage
from winnow.tasks.pii import PiiConfig, PiiStage
from winnow.tasks.quality import QualityConfig, QualityStage

N = 250_000
TEXTS = {
    "one-word": lambda n: "a" * n,
    "newlines": lambda n: "\n" * n,
    "digits": lambda n: "1" * n,
    "at-signs": lambda n: "@" * n,
    "email-like": lambda n: "a@" * (n // 2),
    "dotted-numbers": lambda n: "1.1." * (n // 4),
    "repetitive": lambda n: "the cat sat. " * (n // 13),
}
EVAL_SETS = Path(__file__).resolve().parents[2] / "data" / "decontam"
STAGES = {
    "lid": lambda: LidStage(LidConfig(), StageEnv()),
    "quality": lambda: QualityStage(QualityConfig(), StageEnv()),
    "pii": lambda: PiiStage(PiiConfig(), StageEnv()),
    "decontam": lambda: DecontamStage(DecontamConfig(enabled=True, eval_sets=[
        str(EVAL_SETS / "gutenberg_cloze.jsonl"), str(EVAL_SETS / "genesis_completion.parquet"),
        str(EVAL_SETS / "eltec_qa")]), StageEnv()),
}


def _seconds(stage, text: str) -> float:
    t0 = time.perf_counter()
    list(stage.run([Document(id="w", text=text)], StageStats()))
    return time.perf_counter() - t0


@pytest.mark.parametrize("stage_name", sorted(STAGES))
def test_worst_case_texts_finish_in_bounded_linear_time(stage_name):
    stage = STAGES[stage_name]()
    for name, make in TEXTS.items():
        took = _seconds(stage, make(N))
        assert took < 6.0, f"{stage_name} on {name}: {took:.1f} s for {N:,} chars"
        if took > 0.3:  # long enough to see the growth through the noise of a shared machine
            small = _seconds(stage, make(N // 4))
            assert took < 8 * small + 0.5, f"{stage_name} on {name}: {small:.2f} s -> {took:.2f} s for 4x"
