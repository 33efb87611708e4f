.PHONY: up test test-fast lint typecheck fmt migrate venv faults soak

VENV ?= .venv

up:
	./scripts/up

test:
	./scripts/test

# unit tests only (no database, no processes): seconds
test-fast: venv
	$(VENV)/bin/pytest tests/unit -q -p no:cacheprovider

faults:
	./scripts/faults

soak:
	./scripts/faults --soak

venv:
	./scripts/venv test

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

fmt: venv
	$(VENV)/bin/ruff format jobserver definitions tests migrations
	$(VENV)/bin/ruff check --fix .

migrate: venv
	$(VENV)/bin/jobserver migrate
