# cementsim: `make demo` and `make test` create the virtual environment on first use.
PYTHON ?= python3.12
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NP     ?= 2
PYTEST_ARGS ?=

.PHONY: demo test test-serial test-mpi browser slurm lint venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[fenics,ct,repair,test]"
	touch $(STAMP)

venv: $(STAMP)

## Run the default scenario (vertebroplasty) on $(NP) MPI ranks and print where the results are.
demo: $(STAMP)
	$(BIN)/mpirun -n $(NP) $(BIN)/cementsim run scenarios/vertebroplasty.yaml

## The whole suite serially, then under `mpirun -n 2` (tests marked `serial` are skipped there).
test: test-serial test-mpi

test-serial: $(STAMP) browser slurm
	CEMENTSIM_REQUIRE_BROWSER=1 CEMENTSIM_REQUIRE_SLURM=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

test-mpi: $(STAMP)
	$(BIN)/mpirun -n 2 $(BIN)/python -m pytest -p no:cacheprovider -m "not serial" $(PYTEST_ARGS)

## The report test opens the run report in Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report test (apt-get)"; \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

## The sweep tests start a one-node SLURM cluster on localhost (tests/support/slurm/start.sh,
## stopped again by the tests); this installs Debian's slurm-wlm and munge when missing.
slurm:
	@bash tests/support/slurm/start.sh --install-only

lint: $(STAMP)
	$(BIN)/ruff check sim tests benchmarks
	$(BIN)/ruff format --check sim tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
