# pubmine: `make demo` builds everything and runs the main job; `make test` runs the test suite.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test model bench clean s3-start s3-stop

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

# the default models, built once into ~/.cache/pubmine/models: NER (Chemical, Disease, Gene; MiniLM
# stand-in), the normalizer (MeSH 2024 + MEDIC, embedded names) and the CID relation classifier
model: $(BIN)/.installed
	$(BIN)/pubmine train --config configs/models/default-ner.yaml --if-missing
	$(BIN)/pubmine build-normalizer --if-missing
	$(BIN)/pubmine train --config configs/models/default-cid.yaml --output "$${PUBMINE_HOME:-$$HOME/.cache/pubmine}/models/default-cid" --if-missing

demo: model
	$(BIN)/pubmine run --config configs/local.yaml

test: $(BIN)/.installed
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests

bench: model
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python -m benchmarks.split
	$(BIN)/python -m benchmarks.parse
	$(BIN)/python -m benchmarks.e2e_bc5cdr
	$(BIN)/python -m benchmarks.normalization
	$(BIN)/python -m benchmarks.ner_speed
	$(BIN)/python -m benchmarks.e2e_throughput

s3-start: $(BIN)/.installed
	PATH=$(BIN):$$PATH infra/local/s3.sh start .cache/s3
s3-stop:
	PATH=$(BIN):$$PATH infra/local/s3.sh stop .cache/s3

clean:
	rm -rf $(VENV) store .cache *.egg-info
