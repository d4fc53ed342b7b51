# pubmine: `make demo` builds everything and runs the main job; `make test` runs the test suite.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast model qa-model bench clean s3-start s3-stop browser

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

# the default models into ~/.cache/pubmine/models: NER (PubTator3's six types; MiniLM stand-in), the
# normalizer (MeSH 2024 + MEDIC, embedded names), the CID relation classifier and the document-level
# BioRED relation model (default-redoc: ~90 minutes of training on 2 cores; a release skips it). Pulled from a model
# release (`pubmine models push --to URL` makes one) when RELEASE holds one for this code, each checked
# against its index; built otherwise (each build skips a model already there)
RELEASE ?= ../shared/models
model: $(BIN)/.installed
	@$(BIN)/pubmine models pull --from "$(RELEASE)" || echo "no usable release at $(RELEASE): building the default models (about 120 minutes on 2 cores)"
	$(BIN)/pubmine train --config configs/models/default-ner.yaml --if-missing
	$(BIN)/pubmine build-normalizer --if-missing
	$(BIN)/pubmine train --config configs/models/default-cid.yaml --output "$${PUBMINE_HOME:-$$HOME/.cache/pubmine}/models/default-cid" --if-missing
	$(BIN)/pubmine train --config configs/models/default-redoc.yaml --if-missing --quiet

demo: model
	$(BIN)/pubmine run --config configs/local.yaml

# the question-answering reader (not part of `make model`: about 90 minutes on 2 cores), then its
# scores on the official 7B golden batches by BioASQ's rules and on PubMedQA's test split (scored
# here once: training's own scoring of them is switched off)
qa-model: $(BIN)/.installed
	$(BIN)/pubmine train --config configs/models/default-qa.yaml --if-missing --quiet --set score_test=false
	$(BIN)/pubmine evaluate --task qa $(foreach b,1 2 3 4,--data ../shared/data/qa/bioasq_golden_7b/Task7BGoldenEnriched/7B$(b)_golden.json.gz) --data ../shared/data/qa/bioasq_golden_7b/Task7BGoldenEnriched/7B5_golden.json
	$(BIN)/pubmine evaluate --task qa --dataset pubmedqa

# the headless browser the run-report test opens the page in: Debian's chromium (Playwright's own
# browser download needs the internet); installed once with apt-get (as root, or through sudo)
browser:
	@command -v chromium >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "need chromium on PATH for the report test (a Debian/Ubuntu package)"; exit 2; }; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# the whole suite (CI's command); gpu tests run where a CUDA device is, and are deselected, saying so, elsewhere
test: $(BIN)/.installed browser
	$(BIN)/lint-imports
	@if $(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  $(BIN)/python -m pytest -q tests; \
	else echo "no CUDA device: the gpu tests are deselected"; $(BIN)/python -m pytest -q -m "not gpu" tests; fi

# the fast tier for the inner loop: every unit test, no Ray cluster, no S3 server, no browser, no apt-get
test-fast: $(BIN)/.installed
	$(BIN)/lint-imports
	@echo "fast tier: $$($(BIN)/python -m pytest -q --collect-only -m 'not slow and not gpu' tests | tail -1 | cut -d/ -f1) of the suite's $$($(BIN)/python -m pytest -q --collect-only tests | tail -1 | cut -d' ' -f1) tests"
	$(BIN)/python -m pytest -q -m "not slow and not gpu" tests

bench: model
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python -m benchmarks.split
	$(BIN)/python -m benchmarks.parse
	$(BIN)/python -m benchmarks.e2e_bc5cdr
	$(BIN)/python -m benchmarks.normalization
	$(BIN)/python -m benchmarks.ner_speed
	$(BIN)/python -m benchmarks.e2e_throughput
	$(BIN)/python -m benchmarks.fuzz
	$(BIN)/python -m benchmarks.link_precision
	$(BIN)/python -m benchmarks.calibration

s3-start: $(BIN)/.installed
	PATH=$(BIN):$$PATH infra/local/s3.sh start .cache/s3
s3-stop:
	PATH=$(BIN):$$PATH infra/local/s3.sh stop .cache/s3

clean:
	rm -rf $(VENV) store .cache *.egg-info
