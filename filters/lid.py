"""fastText language identification (lid.176 by default; any fastText LID model works)."""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from importlib.resources import files
from pathlib import Path


class ModelError(ValueError):
    """A model file that is missing or cannot be loaded."""


def bundled(name: str) -> Path:
    """A file shipped in the package (``winnow/models/NAME``); a missing one is a broken install,
    never a silent fallback (an empty threshold table would quietly change what is kept)."""
    path = Path(str(files("winnow").joinpath("models", name)))
    if not path.is_file():
        raise ModelError(f"bundled file {name} is missing from the winnow package ({path}); reinstall winnow")
    return path


DEFAULT_MODEL_NAME = "lid.176.ftz"
DEFAULT_THRESHOLDS_NAME = "lid176_thresholds.json"


def normalise_for_lid(text: str, max_chars: int) -> str:
    """FineWeb-style input for fastText: one line (fastText predicts per line), whitespace
    collapsed, capped to ``max_chars`` (the first part of a page is enough to tell its
    language, and prediction time is linear in length)."""
    return " ".join(text[: max_chars + max_chars // 4].split())[:max_chars]


def _load_fasttext(path: str):
    import fasttext  # noqa: PLC0415 - heavy native module, loaded when a model is needed

    # fasttext prints a deprecation notice on every load_model; it is noise for users.
    fasttext.FastText.eprint = lambda *args, **kwargs: None
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"fastText model not found: {path}")
    try:
        return fasttext.load_model(str(p))
    except Exception as exc:  # noqa: BLE001 - fastText raises ValueError/RuntimeError on bad files
        raise ModelError(f"cannot load fastText model {path}: {exc}") from None


_lock = threading.Lock()


def cached_model(path: str):
    """A fastText model loaded once per process and file version (loading lid.176 takes a
    while; threads share it). A model retrained at the same path is loaded again, also in a
    long-lived worker (Dask, a Prefect worker)."""
    try:
        st = os.stat(path)
        version = (st.st_size, st.st_mtime_ns)
    except OSError:
        version = None  # _load_fasttext says what is wrong
    return _cached_model(path, version)


@lru_cache(maxsize=8)
def _cached_model(path: str, version: tuple[int, int] | None):
    with _lock:
        return _load_fasttext(path)


class FastTextLID:
    """Top-1 language and score of a text. Labels are returned without ``__label__``.

    GlotLID-style labels (``eng_Latn``) are kept as they are, so keep-lists and thresholds
    use whatever label set the model has.
    """

    def __init__(self, model_path: str | Path | None = None, max_chars: int = 10_000) -> None:
        self.model_path = str(model_path or bundled(DEFAULT_MODEL_NAME))
        self.model = cached_model(self.model_path)
        self.max_chars = max_chars
        self.labels = frozenset(lab.removeprefix("__label__") for lab in self.model.get_labels())

    def predict(self, text: str) -> tuple[str, float]:
        """(label, score) of the text's top language; ('und', 0.0) for text with no letters."""
        line = normalise_for_lid(text, self.max_chars)
        if not line:
            return "und", 0.0
        labels, scores = self.model.predict(line, k=1)
        return labels[0].removeprefix("__label__"), min(float(scores[0]), 1.0)


def load_thresholds(path: str | Path | None = None) -> dict[str, float]:
    """Per-language thresholds calibrated for lid.176 (see benchmarks/lid.py --calibrate)."""
    p = Path(path) if path else bundled(DEFAULT_THRESHOLDS_NAME)
    if not p.is_file():
        raise ModelError(f"threshold table not found: {p}")
    try:
        return {k: float(v) for k, v in json.loads(p.read_text())["thresholds"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{p} is not a winnow threshold table: {exc}") from None
