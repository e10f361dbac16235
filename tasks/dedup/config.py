"""The dedup stage's settings, and what follows from them: the band-key parameters an index
must share, the number of key ranges and of connected-components partitions."""

from __future__ import annotations

import functools
import json
import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from winnow.config import path_field
from winnow.stage import StageConfig, StageError
from winnow.storage import StorageError, StorageOptions, filesystem, join, storage_call
from winnow.tasks.dedup.layout import PARAMS

Score = Annotated[float, Field(ge=0.0, le=1.0)]


class DedupConfig(StageConfig):
    """Settings of the MinHash dedup stage (YAML section `dedup`)."""
    enabled: bool = Field(False, description="MinHash near-deduplication across all curated shards.")
    ngram: int = Field(5, ge=1, le=16, description="Word n-gram size of the shingles.")
    bands: int = Field(14, ge=1, description="LSH bands.")
    rows: int = Field(8, ge=1, description="Rows (hashes) per band; bands x rows permutations in all.")
    seed: int = Field(1, description="Permutation seed (datasketch's MinHash seed).")
    exact: bool = Field(True, description="Also group documents whose normalised text is identical.")
    verify_threshold: Score | None = Field(
        0.8, description="Keep a candidate pair (same bucket in some band) only if the full signatures "
                         "agree on at least this share of hashes (estimated Jaccard); null: trust the "
                         "buckets, as datatrove/FineWeb do. Removes the 0.6-0.8 pairs LSH lets through.")
    partitions: int | Literal["auto"] = Field(
        "auto", description="Key ranges per band: a band task holds 16 bytes per document of its range. "
                            "auto: one range per `partition_docs` documents of the corpus, so a band task's "
                            "memory stays the same however large the corpus.")
    partition_docs: int = Field(
        20_000_000, ge=1000, description="auto partitions: documents per key range of a band (16 bytes each, "
                                         "about 4x that while sorting).")
    group_docs: int = Field(
        2_000_000, ge=1, description="Signature tasks take consecutive shards of about this many documents and "
                                     "write one band-key file per band for them.")
    cc_part_edges: int = Field(
        10_000_000, ge=1000, description="Connected components run over partitions of about this many edges "
                                         "(about 56 bytes each in a task).")
    single_task_below: int = Field(
        200_000, ge=0, description="Corpora with fewer documents run signatures to clusters in one task "
                                   "(seconds of work, which the staged map over shards and bands would "
                                   "spend on scheduling); 0: always staged.")
    index: list[str] = path_field(
        default_factory=list, stamped=False,  # keyed by each index's own done-marker (settings())
        description="Dedup work folders of earlier runs (OUTPUT/dedup): documents near-duplicate to one "
                    "already published there are removed, and the earlier ones are never touched.")
    upsample: dict[int, int] = Field(
        default_factory=dict,
        description="FineWeb-2-style rehydration: {min_cluster_size: copies}; the kept document of a "
                    "cluster of size s is written `copies` times for the largest min_cluster_size <= s. "
                    "Empty: keep one copy, record the size only.")

    @field_validator("partitions")
    @classmethod
    def _ranges(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 65536:
            raise ValueError("partitions must be 1..65536 or auto")
        return v

    @field_validator("upsample")
    @classmethod
    def _positive(cls, v: dict[int, int]) -> dict[int, int]:
        if any(k < 1 or c < 1 for k, c in v.items()):
            raise ValueError("cluster sizes and copies must be >= 1")
        return v


def params(cfg: DedupConfig) -> dict[str, Any]:
    """What must match for two runs' band keys to be comparable."""
    return {"ngram": cfg.ngram, "bands": cfg.bands, "rows": cfg.rows, "seed": cfg.seed, "exact": cfg.exact,
            "signatures": cfg.verify_threshold is not None, "layout": "groups-v2",
            "shingle_hash": "winnow-xxh3-posmult-v1", "band_key": "winnow-mix64-v1"}


def check_index(cfg: DedupConfig, so: StorageOptions = None) -> None:
    """Earlier runs named in dedup.index must be dedup folders built with the same parameters, or
    their keys mean nothing here."""
    def read_params(path: str) -> bytes | None:
        fs, p = filesystem(join(path, PARAMS), so)
        return fs.cat_file(p) if fs.exists(p) else None

    for path in cfg.index:
        try:
            raw = storage_call(path, "read the dedup index", functools.partial(read_params, path))
        except StorageError as exc:
            raise StageError(f"dedup.index: {exc}") from None
        if raw is None:
            raise StageError(f"dedup.index: {path} is not a winnow dedup folder (no {PARAMS}); "
                             "point it at an earlier run's OUTPUT/dedup")
        try:
            theirs = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StageError(f"dedup.index: {path}/{PARAMS} is damaged (not JSON)") from None
        if theirs != params(cfg):
            raise StageError(f"dedup.index: {path} was built with {theirs}, this run uses {params(cfg)}; "
                             "band keys are only comparable with the same parameters")


def n_partitions(cfg: DedupConfig) -> int:
    """Band keys per document: the bands, plus the exact-text key."""
    return cfg.bands + (1 if cfg.exact else 0)


def n_ranges(cfg: DedupConfig, n_docs: int) -> int:
    """Key ranges per band for a corpus of ``n_docs`` documents."""
    if cfg.partitions == "auto":
        return max(1, math.ceil(n_docs / cfg.partition_docs))
    return int(cfg.partitions)


def band_tasks(cfg: DedupConfig, ranges: int) -> list[tuple[int, int]]:
    """(band, key range) pairs: the units of phase 2."""
    return [(b, p) for b in range(n_partitions(cfg)) for p in range(ranges)]


def cc_parts(cfg: DedupConfig, edges: int) -> int:
    """Partitions of the connected-components rounds for ``edges`` member -> root edges."""
    return max(1, math.ceil(edges / cfg.cc_part_edges))
