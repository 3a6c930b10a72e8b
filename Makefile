# resource-prediction: every target bootstraps .venv itself (idempotent; quick when nothing changed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARTIFACTS ?= artifacts
PORT   ?= 8000
BOOK   := _build/html

.PHONY: help venv run test bench lab html serve dev clean browser app

help:
	@echo "make run    install, generate the default data, run the pipeline, build the book"
	@echo "make test   lint and the test suite (includes the papermill pipeline and book build)"
	@echo "make bench  benchmarks, JSON in $(ARTIFACTS)/bench/"
	@echo "make lab    JupyterLab on the notebooks"
	@echo "make app    the simulation app (Voila) on http://127.0.0.1:8866"
	@echo "make html | serve | dev | clean   the Jupyter Book (served on http://localhost:$(PORT))"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's Chromium: the headless browser of the page checks and of plotly's PNG export.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (needs root and apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

# The whole job on the default data: the classification search (CLI), then the notebooks via
# papermill (regression search, every family evaluated, simulation), then the book.
# Budget per family and search: TRIALS trials or TIMEOUT seconds, whichever comes first, JOBS
# trials at a time (one per core), THREADS OpenMP threads each.
TRIALS  ?= 10
TIMEOUT ?= 120
JOBS    ?= 2
THREADS ?= 1
run: venv
	@$(MAKE) --no-print-directory browser || echo "no Chromium: the report charts are written as HTML only (no PNG)"
	$(BIN)/resource-prediction summary --artifacts-dir $(ARTIFACTS) --json $(ARTIFACTS)/reports/data_summary.json
	OMP_NUM_THREADS=$(THREADS) $(BIN)/resource-prediction search --artifacts-dir $(ARTIFACTS) --task-type classification --n-trials $(TRIALS) --timeout $(TIMEOUT) --n-jobs $(JOBS) --no-progress-bar
	$(BIN)/resource-prediction --artifacts-dir $(ARTIFACTS) --model-type regression --run-search --evaluate-all-archs --n-trials $(TRIALS) --timeout $(TIMEOUT) --n-jobs $(JOBS) --threads $(THREADS)
	$(MAKE) --no-print-directory html
	@echo "book:    $(abspath $(BOOK))/index.html   (make serve: http://localhost:$(PORT))"
	@echo "models:  $(abspath $(ARTIFACTS))/trained_models"
	@echo "reports: $(abspath $(ARTIFACTS))/reports"

test: venv browser
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: venv
	$(BIN)/python -m bench --out $(ARTIFACTS)/bench

lab: venv
	$(BIN)/jupyter lab notebooks

# The simulation as a standalone web app (Voila, sources hidden) on http://127.0.0.1:8866
app: venv
	RESOURCE_PREDICTION_ARTIFACTS=$(abspath $(ARTIFACTS)) $(BIN)/voila notebooks/05_simulation.ipynb --no-browser --port=8866 --Voila.ip=127.0.0.1

# The book publishes the notebooks as papermill executed them (book/results/, written by make run).
html: venv
	@test -f book/results/04_evaluation.ipynb || { echo "no executed notebooks in book/results/: run 'make run' first"; exit 1; }
	$(BIN)/python -m resource_prediction.glance --artifacts-dir $(ARTIFACTS) --out book/results/glance.md
	$(BIN)/python -m resource_prediction.quality_page --bench $(ARTIFACTS)/bench/quality.json --out book/results/quality.md
	$(BIN)/jupyter-book build -W --keep-going --path-output . .

serve:
	@test -d $(BOOK) || $(MAKE) html
	@echo "serving the book on http://localhost:$(PORT)"
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 -d $(BOOK)

dev: clean html serve

clean:
	rm -rf _build
