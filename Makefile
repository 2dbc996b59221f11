# Every target sets up its own virtualenv (.venv) on first use; nothing else is needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= runs/demo

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: venv demo test lint bench clean chromium

venv: $(VENV)/.installed

# torch first, pinned to the CPU build on disk, so no later package can pull a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-cache-dir --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-cache-dir --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

demo: venv
	$(BIN)/imagen-audit run demo --out $(DEMO)
	$(BIN)/imagen-audit export $(DEMO) --out $(DEMO)/images.csv

# The report is tested in a real headless browser: Debian's chromium (playwright drives it;
# playwright's own browser download does not work offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/dev/null 2>&1 || echo "chromium could not be installed: browser tests will be skipped"; }

test: venv chromium
	$(BIN)/ruff check imagen_audit tests bench
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python bench/bench_runner_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
