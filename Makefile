# lenscope: `make demo` runs the main job, `make test` runs every check. Each sets itself up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.lenscope-installed
APT_PACKAGES := graphviz chromium
WEB_STAMP := web/node_modules/.lenscope-installed

.PHONY: setup system web webtest demo test lint typecheck unit docs bench clean

# Debian packages (graphviz draws the Markov graphs); installed only when missing.
system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "== installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; fi

$(PY):
	python3 -m venv $(VENV)

# torch is pinned and installed first: this spelling takes the CPU wheel on this machine's disk.
$(STAMP): pyproject.toml | $(PY)
	@echo "== installing Python packages into $(VENV)"
	$(PIP) install --progress-bar on torch==2.13.0
	$(PIP) install --progress-bar on -e '.[dev]'
	@touch $@

# The web viewer: npm packages pinned by package-lock.json, built into web/dist (served by `lenscope serve`).
$(WEB_STAMP): web/package.json web/package-lock.json
	@echo "== installing the web app's npm packages"
	cd web && npm ci --no-audit --no-fund
	@touch $@

web: $(WEB_STAMP)
	cd web && npm run build

webtest: $(WEB_STAMP)
	cd web && npm test

setup: system $(STAMP) web

# A wheel for `pip install` anywhere, carrying assets/ and the built web app (setup.py copies them
# in; `setup` built web/dist). Offline: setuptools comes from $(VENV).
.PHONY: wheel
wheel: setup
	$(PIP) wheel --no-deps --no-build-isolation --no-index -w dist .

demo: setup
	$(VENV)/bin/lenscope demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q -ra

# The documentation site (mkdocs + mkdocstrings: docs/ and an API reference from the docstrings)
# into out/docs; --strict turns a broken reference or dead link into a failure, so `make test` fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

test: lint typecheck webtest unit docs

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

# On a machine with a CUDA GPU: the device tests and the benchmarks on the GPU, figures as one
# JSON object (scripts/gpu_check.sh). Fails (exit 2) where torch sees no GPU. No `setup`: a GPU
# machine may be offline; it uses $(VENV) when present, else python3 (torch with CUDA in either).
.PHONY: gpu-check
gpu-check:
	PY=$$([ -x $(PY) ] && echo $(PY) || echo python3) bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
