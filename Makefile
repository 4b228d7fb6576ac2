# The README's two Quick-start commands. Each creates .venv if absent and installs into it.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: bench test lint install reference

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev,ray,mujoco]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/metarl-bench sweep quick

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# The reference table (docs/reference.md): every reference sweep, with results/reference/<family>.csv
# as its ledger (the runs it holds are skipped, each finished run is merged into it), RL²'s bandit, tabular-MDP and maze rows (and
# LSTM-A2C's tabular-MDP rows) from the RL² Table 1, 2 and 3 ledgers, and results/reference.{md,csv}
# built from the merged records.
reference: $(STAMP)
	mkdir -p results/reference
	for f in benchmark/configs/sweeps/reference/*.yaml; do \
	  family=$$(basename $$f .yaml); \
	  $(VENV)/bin/metarl-bench sweep $$f --workers 1 \
	    --ledger results/reference/$$family.csv > /dev/null || exit 1; \
	done
	$(VENV)/bin/metarl-bench table --from results/ledgers/rl2_table1.csv --where algorithm=rl2 pulls=10 seed=0,1,2 \
	  --export-runs results/reference/bernoulli-bandit.csv > /dev/null
	$(VENV)/bin/metarl-bench table --from results/ledgers/rl2_table2.csv --where episodes=10 seed=0,1,2 \
	  --export-runs results/reference/tabular-mdp.csv > /dev/null
	$(VENV)/bin/metarl-bench table --from results/ledgers/rl2_table3.csv \
	  --export-runs results/reference/maze.csv > /dev/null
	$(VENV)/bin/metarl-bench table --from 'results/reference/*.csv' --criteria --out results/reference.md > /dev/null
	$(VENV)/bin/metarl-bench table --from 'results/reference/*.csv' --criteria --format csv \
	  --out results/reference.csv > /dev/null
