# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install lint types pytest clean

# llama.cpp built for any x86-64 with AVX2, not for the build machine alone: a native build picks up
# AVX-512/AMX kernels that crashed here on prompts of more than one token, and would not run on
# machines without them.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

# Install only when a requirements file changed since the last install.
$(STAMP): requirements.txt requirements-nodeps.txt
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing requirements. The first time takes minutes: llama-cpp-python (the offline chat"
	@echo "engine) is built from source, about 12 minutes on 2 cores; pip caches it for next time."
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check --progress-bar on --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work offline).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	@echo "Installing Chromium from Debian for the browser tests (once)..."
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

install: $(STAMP)

run: $(STAMP)
	$(PY) -m assistant_project.devservices run

# mypy's Django plugin loads the settings, which need these set (nothing connects to them).
MYPY_ENV := DEBUG=true DATABASE_URL=postgres://mypy@localhost/mypy REDIS_URL=redis://localhost:6379/0

test: $(STAMP) $(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MYPY_ENV) $(VENV)/bin/mypy
	$(PY) -m assistant_project.devservices with-services -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(MYPY_ENV) $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
