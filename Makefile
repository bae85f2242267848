# Two commands: `make run` opens Lantern, `make test` runs the whole suite.
# Both create .venv on first use (about 10 minutes: llama-cpp-python compiles) and reuse it after.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.lantern-installed
LLAMA_CMAKE_ARGS := $(shell sh packaging/llama_cmake_args.sh)

.PHONY: run test bench doctor clean-venv

run: $(STAMP)
	$(VENV)/bin/lantern $(ARGS)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

doctor: $(STAMP)
	$(VENV)/bin/lantern doctor

bench: $(STAMP)
	$(VENV)/bin/python bench/generation.py

$(STAMP): pyproject.toml constraints.txt packaging/llama_cmake_args.sh
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	# torch first and pinned: it comes from the local CPU wheel, never the CUDA build.
	$(VENV)/bin/python -m pip install -q -c constraints.txt torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" FORCE_CMAKE=1 $(VENV)/bin/python -m pip install -q \
		-c constraints.txt -e '.[retrieval,legacy,dev]'
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
