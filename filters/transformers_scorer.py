"""Score documents with a local transformers sequence-classification model: FineWeb-Edu style
regression heads (one output: the score) and classification heads (the probability of one
class). Batched under ``torch.inference_mode()``, on the GPU when there is one.

The model folder is the user's (``save_pretrained`` output: config.json, weights, tokenizer); it
is opened with ``local_files_only``, so nothing is ever downloaded at run time. torch and
transformers are the ``rephrase`` extra's, imported only when a scorer is built.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from winnow.filters.lid import ModelError

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["float32", "bfloat16", "float16"]
HeadKind = Literal["regression", "single_label", "multi_label"]
# Weight, tokenizer and config files that from_pretrained reads: their stamps key the output.
_MODEL_FILES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken", ".py")


@dataclass(frozen=True)
class Head:
    """What the model's head outputs: one regression value, or classes (softmax for a
    single-label head, sigmoid for a multi-label one) with their names."""
    kind: HeadKind
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Scored:
    """A text's score and, for a classification head, its top class."""
    score: float
    label: str | None


def read_config(model_path: str) -> dict[str, Any]:
    """config.json of a sequence-classification model folder; ModelError saying what is wrong."""
    folder = Path(model_path)
    if not folder.is_dir():
        raise ModelError(f"transformers model folder not found: {model_path} (a save_pretrained folder "
                         "with config.json, weights and tokenizer; it is never downloaded)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(f"{model_path} has no config.json: not a transformers model folder")
    try:
        config: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {config_file}: {exc}") from None
    archs = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise ModelError(f"{model_path} is not a sequence-classification model (architectures {archs}; "
                         "expected e.g. BertForSequenceClassification)")
    return config


def head_of(config: dict[str, Any]) -> Head:
    """The head a config describes (transformers' own rule: one label is regression)."""
    id2label = config.get("id2label") or {}
    n = int(config.get("num_labels") or len(id2label) or 2)
    labels = tuple(str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(n))
    problem = config.get("problem_type")
    if problem == "regression" or (problem is None and n == 1):
        return Head("regression", labels)
    return Head("multi_label" if problem == "multi_label_classification" else "single_label", labels)


def label_index(head: Head, label: str | int | None, model_path: str) -> int | None:
    """The class whose probability is the score (None: the top class's); a regression head
    takes none."""
    if label is None:
        return None
    if head.kind == "regression":
        raise ModelError(f"{model_path} has a regression head (one output): it takes no label")
    if isinstance(label, int) or (isinstance(label, str) and label.isdigit() and label not in head.labels):
        i = int(label)
        if not 0 <= i < len(head.labels):
            raise ModelError(f"{model_path} has {len(head.labels)} classes: no class {i}")
        return i
    if label not in head.labels:
        raise ModelError(f"{model_path} has no class {label!r} (its classes: {list(head.labels)})")
    return head.labels.index(label)


def folder_stamp(model_path: str) -> dict[str, Any]:
    """What identifies a model folder for a done-marker key: a digest of config.json and the
    size and change time of every file from_pretrained reads (weights are not hashed: a
    FineWeb-Edu classifier is 600 MB and the key is built at every run's start)."""
    folder = Path(model_path)
    try:
        config = (folder / "config.json").read_bytes()
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_MODEL_FILES))
        stamps = {p.name: f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files}
    except OSError:
        return {"missing": model_path}  # the stage's check says so, before any work
    return {"config_sha256": hashlib.sha256(config).hexdigest()[:16], "files": stamps}


def resolve_device(device: Device) -> str:
    import torch  # noqa: PLC0415 - heavy optional dependency (the rephrase extra)

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("device: cuda, but torch sees no GPU here (device: auto uses one when there is one)")
    return device


class _Loaded:
    """A tokenizer and model loaded once per process, shared by the shards' stage instances."""

    def __init__(self, model_path: str, device: str, dtype: DType) -> None:
        try:
            import torch  # noqa: PLC0415 - heavy optional dependency (the rephrase extra)
            from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415 - same
        except ImportError as exc:
            raise ModelError(f"the transformers scorer needs torch and transformers (pip install "
                             f"'winnow[rephrase]'): {exc}") from None
        try:
            self.tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model_path, local_files_only=True, dtype=getattr(torch, dtype)).to(device)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelError(f"cannot load {model_path}: {' '.join(str(exc).split())[:300]}") from None
        self.model.eval()
        if self.tok.pad_token is None:  # GPT-style tokenizers: batches still need padding
            self.tok.pad_token = self.tok.eos_token or self.tok.unk_token
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tok.pad_token_id
        # A fast tokenizer's truncation state lives in one Rust object: threads sharing it raise
        # "Already borrowed". One lock per model also keeps threads from oversubscribing torch.
        self.lock = threading.Lock()
        self.device = device


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached(model_path: str, stamp: str, device: str, dtype: DType) -> _Loaded:
    with _load_lock:
        return _Loaded(model_path, device, dtype)


class TransformersScorer:
    """Scores of texts under one model: a regression head's output, or the probability of
    ``label`` (a class name or index; None: the top class) under a classification head.

    Per text the time and memory are bounded: its first ``max_chars`` characters are
    tokenized, truncated to ``max_length`` tokens (FineWeb-Edu: 512)."""

    def __init__(self, model_path: str, *, label: str | int | None = None, max_length: int = 512,
                 max_chars: int = 10_000, batch_size: int = 32, device: Device = "auto",
                 dtype: DType = "float32") -> None:
        self.model_path = str(model_path)
        self.head = head_of(read_config(self.model_path))
        self.label_index = label_index(self.head, label, self.model_path)
        self.max_chars = max_chars
        self.batch_size = batch_size
        stamp = json.dumps(folder_stamp(self.model_path), sort_keys=True)  # a changed model loads again
        self._m = _cached(self.model_path, stamp, resolve_device(device), dtype)
        limit = getattr(self._m.tok, "model_max_length", None) or max_length
        # Tokenizers without a limit report 1e30; a model's position table is the real bound.
        positions = getattr(self._m.model.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, int(limit) if limit < 1_000_000 else max_length, int(positions))

    @property
    def device(self) -> str:
        return self._m.device

    def score(self, texts: list[str]) -> list[Scored]:
        """Scores in the order of ``texts``; texts of similar token length are batched together
        (less padding), which does not change a text's score beyond float rounding."""
        import torch  # noqa: PLC0415 - heavy optional dependency (the rephrase extra)

        if not texts:
            return []
        m = self._m
        out: list[Scored | None] = [None] * len(texts)
        with m.lock, torch.inference_mode():
            enc = m.tok([t[: self.max_chars] for t in texts], truncation=True, max_length=self.max_length)
            ids = enc["input_ids"]
            # A text without tokens (empty, for a tokenizer that adds no special tokens) has
            # nothing to score: 0, the bottom of a FineWeb-Edu scale and of a probability.
            for i in range(len(texts)):
                if not ids[i]:
                    out[i] = Scored(0.0, None)
            order = sorted((i for i in range(len(texts)) if ids[i]), key=lambda i: -len(ids[i]))
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                feats = [{k: enc[k][i] for k in enc.keys()} for i in chunk]
                batch = m.tok.pad(feats, return_tensors="pt").to(m.device)
                logits = m.model(**batch).logits.float()
                for i, scored in zip(chunk, self._decide(logits), strict=True):
                    out[i] = scored
        return [s for s in out if s is not None]

    def _decide(self, logits: Any) -> list[Scored]:
        import torch  # noqa: PLC0415 - heavy optional dependency (the rephrase extra)

        if self.head.kind == "regression":
            return [Scored(float(v), None) for v in logits[:, 0].cpu().tolist()]
        probs = torch.sigmoid(logits) if self.head.kind == "multi_label" else torch.softmax(logits, dim=-1)
        top = probs.argmax(dim=-1).cpu().tolist()
        rows = probs.cpu().tolist()
        k = self.label_index
        return [Scored(row[k] if k is not None else row[t], self.head.labels[t]) for row, t in zip(rows, top)]
