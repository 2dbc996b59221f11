# Every target sets up its own virtualenv (.venv) on first use; nothing else is needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= runs/demo

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: venv demo test lint bench clean

venv: $(VENV)/.installed

# torch first, pinned to the CPU build on disk, so no later package can pull a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

demo: venv
	$(BIN)/imagen-audit generate --probes occupations --limit-prompts 6 --samples-per-prompt 2 \
	    --model tiny-cascade --out $(DEMO)
	$(BIN)/imagen-audit export $(DEMO) --out $(DEMO)/samples.csv
	$(BIN)/imagen-audit report $(DEMO)

test: venv
	$(BIN)/ruff check imagen_audit tests bench
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python bench/bench_runner_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
