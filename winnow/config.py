"""The configuration base: strict models, the run-level settings every stage shares, and YAML
loading with messages a person can act on.

Each stage declares its own config section next to its code (``winnow.tasks.<stage>``); the
full model is assembled from the stage registry (``winnow.tasks.pipeline.WinnowConfig``), so a
new stage never edits this file. Fields are marked here with two pieces of metadata that the
generic machinery reads instead of per-field code:

* ``path_field(...)``: a file, folder or glob named by the config. Relative values in a config
  file are resolved against the file's folder, and the stage's resource check opens them.
* ``runtime_field(...)``: a setting that changes how a stage runs (timeouts, concurrency) but
  not what it writes, so it is left out of the done-marker key (see :mod:`winnow.resume`).
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import fsspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator
from pydantic.fields import FieldInfo

from winnow.storage import StorageOptions

PATH_MARK = "winnow_path"
STAMP_OFF = "winnow_unstamped"
RUNTIME_MARK = "winnow_runtime"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which field and why."""


class StrictModel(BaseModel):
    # Unknown keys are errors: a typo in a field name must not silently fall back to a default.
    """A model that rejects unknown keys, so a misspelt setting is an error, not a silent default."""
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _marked(mark: str, default: Any, description: str, kwargs: dict[str, Any]) -> Any:
    if "default_factory" in kwargs:
        return Field(description=description, json_schema_extra={mark: True}, **kwargs)
    return Field(default, description=description, json_schema_extra={mark: True}, **kwargs)


def path_field(default: Any = None, description: str = "", stamped: bool = True, **kwargs: Any) -> Any:
    """A field naming a file/folder/glob: resolved against the config file's folder. Unless
    ``stamped`` is False (outputs, or folders whose stage keys them itself), what it names is
    part of the done-marker key: an edited list or a retrained model redoes the shards."""
    field = _marked(PATH_MARK, default, description, kwargs)
    if not stamped:
        field.json_schema_extra[STAMP_OFF] = True
    return field


def runtime_field(default: Any = ..., description: str = "", **kwargs: Any) -> Any:
    """A field that does not change a stage's output (left out of done-marker keys)."""
    return _marked(RUNTIME_MARK, default, description, kwargs)


def _is_marked(field: Any, mark: str) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(mark))


def output_settings(model: BaseModel) -> dict[str, Any]:
    """The settings of ``model`` that shape what a stage writes: everything but runtime fields,
    recursively, as JSON-able values (the done-marker key is a digest of them)."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        if _is_marked(field, RUNTIME_MARK):
            continue
        value = getattr(model, name)
        out[name] = output_settings(value) if isinstance(value, BaseModel) else _jsonable(value)
    return out


def stamped_paths(model: BaseModel, prefix: str = "") -> dict[str, list[str]]:
    """Dotted field name -> the paths of every set, stamped path field of ``model`` (recursive)."""
    out: dict[str, list[str]] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.update(stamped_paths(value, f"{prefix}{name}."))
        elif _is_marked(field, PATH_MARK) and not _is_marked(field, STAMP_OFF) and value:
            out[prefix + name] = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return out


_SECRET = re.compile(r"secret|token|passw|credential|private|signature|^key$|access_key", re.IGNORECASE)


def redact_secrets(value: Any) -> Any:
    """``value`` with every credential-like entry (key, secret, token, password, ...) masked."""
    if isinstance(value, dict):
        return {k: "***" if isinstance(k, str) and _SECRET.search(k) and v not in (None, "")
                else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_secrets(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class RunnerConfig(StrictModel):
    """How the units of work run: where (threads, processes, Dask), how many at once, how many task runs per phase."""
    kind: Literal["threads", "processes", "dask"] = Field(
        "threads", description="threads: one process, no extra servers; processes: one process per worker; "
                               "dask: a Dask cluster (prefect-dask), local or at `dask_address`. With processes "
                               "or dask and no PREFECT_API_URL, winnow starts one temporary Prefect server "
                               "that every worker shares.")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=4096,
                         description="Tasks run at the same time (dask: worker processes of the local cluster).")
    retries: int = Field(1, ge=0, le=10, description="Retries of a failed task (e.g. a network error on S3).")
    dask_address: str | None = Field(
        None, description="dask: scheduler address of an existing cluster (e.g. tcp://10.0.0.5:8786); "
                          "null: start a LocalCluster of `workers` processes for the run. Workers of a remote "
                          "cluster need winnow installed and PREFECT_API_URL set to the same Prefect server.")
    max_tasks: int = Field(
        1000, ge=1, le=100_000,
        description="Most Prefect task runs per phase: shards are batched into at most this many tasks "
                    "(each shard keeps its own output and done-marker, so a killed task redoes only its "
                    "unfinished shards). A Prefect server's in-memory event queues drop task runs past a few "
                    "thousand per flow (deploy/README.md).")
    shards_per_task: int | None = Field(
        None, ge=1, description="Shards per task; null: one per task until `max_tasks` would be passed.")

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RunnerConfig:
        if self.dask_address and self.kind != "dask":
            raise ValueError(f"dask_address is set but kind is {self.kind!r}; set runner.kind: dask")
        return self

    def batches(self, n: int, tasks_per_worker: int | None = None) -> list[list[int]]:
        """Indices 0..n-1 in consecutive batches, one batch per task: one shard per task until
        ``max_tasks`` would be passed. Phases whose work per shard is milliseconds ask for about
        ``tasks_per_worker`` tasks per worker instead, so scheduling does not dominate."""
        if n == 0:
            return []
        size = -(-n // self.max_tasks)
        if self.shards_per_task:
            size = max(size, self.shards_per_task)
        elif tasks_per_worker:
            size = max(size, -(-n // (tasks_per_worker * self.workers)))
        return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


def config_sections(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, list[tuple[str, FieldInfo]]]]:
    """Each section of ``model``, depth first, as (its dotted prefix, its own fields): what
    ``winnow stages`` and the generated configuration reference list. The runner section is
    listed on its own by both, so it is not repeated under the top level."""
    fields, nested = [], []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((name, annotation))
        else:
            fields.append((name, field))
    yield prefix, fields
    for name, sub in nested:
        if sub is not RunnerConfig:
            yield from config_sections(sub, f"{prefix}{name}.")


class PipelineConfig(StrictModel):
    """Run-level settings. The stage sections (``ingest``, ``lid``, ...) are added by the registry."""

    input: list[str] = path_field(..., description="Input files, directories or globs (local or s3://): "
                                                   ".warc[.gz], .jsonl[.gz], .parquet. Small files are grouped "
                                                   "into shards of about `shard_size_mb`.")
    output: str = path_field(..., description="Output directory (local or s3://).")
    storage_options: dict[str, Any] = runtime_field(
        default_factory=dict, description="fsspec options for remote paths, e.g. {endpoint_url: ..., anon: false}.")
    runner: RunnerConfig = runtime_field(default_factory=RunnerConfig,
                                         description="How tasks run (threads, processes, dask).")
    rows_per_row_group: int = runtime_field(2000, ge=1, description="Parquet row-group size of output shards.")
    only_stages: list[str] | None = runtime_field(
        None, description="Set by --stages (and a deployment's `stages`): the run is limited to these stages. "
                          "It never rewrites what the others wrote: their current output is its input, "
                          "and it refuses before any work where it would replace it.")
    shard_size_mb: float = Field(
        1.0, ge=0, description="Consecutive input files smaller than this are grouped into one shard of about "
                               "this many MB (one output file and done-marker each), so that many small files "
                               "do not each pay a task's scheduling cost; larger files are one shard each "
                               "(Common Crawl's 1 GB WARCs). 0: one shard per input file.")

    @field_serializer("storage_options", when_used="json")
    def _redacted(self, value: dict[str, Any]) -> dict[str, Any]:
        # JSON is what leaves the process: Prefect stores a flow run's parameters (this config)
        # on the server, where the UI shows them. Workers get the config pickled, secrets intact.
        return redact_secrets(value)

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

    def section(self, name: str) -> BaseModel:
        """The config section of stage ``name`` (typed access: ``Stage.config_of(cfg)``)."""
        section: BaseModel = getattr(self, name)
        return section


def format_errors(err: ValidationError, source: str) -> str:
    """pydantic's errors as one line per field with its dotted path, the form the CLI prints."""
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


# `tiktoken:cl100k_base` and the like name a resource, not a file.
_NOT_A_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9_+.-]*:(?!//)")


def resolve_path(path: str, base: Path | str) -> str:
    """``path`` relative to ``base`` (a folder, or the URL folder of a remote config)."""
    if "://" in path or os.path.isabs(path) or (_NOT_A_PATH.match(path) and not os.path.exists(path)):
        return path
    if isinstance(base, str):  # the config itself lives at a URL: relative paths are beside it
        return base.rstrip("/") + "/" + path
    return str((base / path).resolve()) if not any(c in path for c in "*?[") else str(base / path)


def _resolve_paths(data: dict[str, Any], model: type[BaseModel], base: Path | str) -> None:
    """Resolve every path field of ``data`` (raw YAML) in place, guided by the model's fields,
    including those of models inside lists (``classify.classifiers[*].model_path``)."""
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        value = data[name]
        sub = field.annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _resolve_paths(value, sub, base)
        elif isinstance(value, list) and (items := _item_models(sub)):
            for entry in value:  # an item's own model when its discriminator says which, else each
                if isinstance(entry, dict):
                    for m in items:
                        if _may_be(entry, m):
                            _resolve_paths(entry, m, base)
        elif _is_marked(field, PATH_MARK):
            if isinstance(value, str):
                data[name] = resolve_path(value, base)
            elif isinstance(value, list):
                data[name] = [resolve_path(str(v), base) if isinstance(v, str) else v for v in value]


def _item_models(annotation: Any) -> list[type[BaseModel]]:
    """The models the items of a ``list[...]`` field can be (``list[A | B]``, discriminated or not)."""
    if typing.get_origin(annotation) is not list:
        return []
    (item,) = typing.get_args(annotation) or (None,)
    while typing.get_origin(item) is typing.Annotated:
        item = typing.get_args(item)[0]
    options = typing.get_args(item) or (item,)
    return [m for m in options if isinstance(m, type) and issubclass(m, BaseModel)]


def _may_be(entry: dict[str, Any], model: type[BaseModel]) -> bool:
    """False when a Literal field of ``model`` (a discriminator such as ``kind``) rules the entry out."""
    for name, field in model.model_fields.items():
        if typing.get_origin(field.annotation) is typing.Literal and name in entry \
                and entry[name] not in typing.get_args(field.annotation):
            return False
    return True


def _read_config_text(path: str, storage_options: StorageOptions) -> str:
    if "://" not in path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p.read_text(encoding="utf-8")
    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as f:
            data: bytes = f.read()
            return data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None


def yaml_error_line(source: str, exc: yaml.YAMLError) -> str:
    """'cfg.yaml, line 2, column 7: not valid YAML: expected ',' or ']', but got ':' (while parsing a
    flow sequence that starts at line 1, column 8)': one line. PyYAML's own text spans several lines and quotes the
    offending YAML, which may hold anything (brackets a terminal would read as markup)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    started = getattr(exc, "context_mark", None)
    if context and started is not None and started is not mark:
        context += f" that starts at line {started.line + 1}, column {started.column + 1}"
    if problem:
        what = str(problem) + (f" ({context})" if context else "")
    else:
        what = " ".join(str(exc).split())
    return f"{where}: not valid YAML: {what}"


def load_yaml_config(model: type[PipelineConfig], path: str | os.PathLike[str] | None = None,
                     overrides: dict[str, Any] | None = None,
                     storage_options: StorageOptions = None) -> PipelineConfig:
    """Load YAML (local or a URL such as s3://; paths in it are relative to the file), apply
    dotted overrides (``{"runner.workers": 4}``; paths relative to the current directory), and
    validate once. ``storage_options`` are only for reading a remote config file."""
    data: dict[str, Any] = {}
    source = "command-line options"
    if path is not None:
        source = str(path)
        text = _read_config_text(str(path), storage_options)
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(yaml_error_line(source, exc)) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(loaded).__name__}")
        data = loaded
        if isinstance(data.get("input"), str):
            data["input"] = [data["input"]]
        base: Path | str = str(path).rsplit("/", 1)[0] if "://" in str(path) else Path(path).resolve().parent
        _resolve_paths(data, model, base)
    patch: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        cursor = patch
        *parents, leaf = key.split(".")
        for part in parents:
            cursor = cursor.setdefault(part, {})
        cursor[leaf] = [value] if key == "input" and isinstance(value, str) else value
    _resolve_paths(patch, model, Path.cwd())
    _deep_update(data, patch)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None


def _deep_update(data: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            _deep_update(data[key], value)
        else:
            data[key] = value
