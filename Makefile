# The two commands a fresh clone needs: `make run` and `make test`. Everything else is set up by them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install services-start services-stop bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, at the pinned release, so no dependency asks for a newer one.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[worker,cluster,test]'
	# The sampler reference of the tests: k-diffusion's sampling module without its training stack.
	$(BIN)/pip install -q --no-deps k-diffusion==0.1.1.post1
	# The worker's ControlNet annotator networks (adapters/preprocessors): controlnet-aux and the timm it
	# imports both declare torch and torchvision as dependencies; the pinned ones above serve them.
	$(BIN)/pip install -q --no-deps controlnet-aux==0.0.10 timm==1.0.31
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/openesd serve

test: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	bash scripts/test-services.sh start
	$(BIN)/python -m pytest

services-start:
	bash scripts/test-services.sh start

services-stop:
	bash scripts/test-services.sh stop

clean:
	rm -rf $(VENV) .pytest_cache
