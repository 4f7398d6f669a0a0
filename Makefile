# Two commands for a fresh machine: `make test` and `make bench`. Both create .venv if it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.effzoo-installed

.PHONY: setup test bench clean mpc

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(VENV)/bin/zoo bench

# SPU (issue 19) needs numpy<2 and jax<=0.4.34: its own venv, so the default install is unaffected.
MPC_VENV  := .venv-mpc
MPC_STAMP := $(MPC_VENV)/.effzoo-mpc-installed
MPC_REQS  := 'spu==0.9.5' 'numpy<2' 'jax<=0.4.34' 'jaxlib<=0.4.34' 'safetensors>=0.4'

mpc: $(MPC_STAMP)

$(MPC_STAMP):
	@test -x $(MPC_VENV)/bin/python || $(PYTHON) -m venv $(MPC_VENV)
	$(MPC_VENV)/bin/python -m pip install --quiet $(MPC_REQS)
	@touch $(MPC_STAMP)

clean:
	rm -rf $(VENV) $(MPC_VENV) build *.egg-info runs
