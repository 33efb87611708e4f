.PHONY: up test lint fmt migrate venv faults soak

VENV ?= .venv

up:
	./scripts/up

test:
	./scripts/test

faults:
	./scripts/faults

soak:
	./scripts/faults --soak

venv:
	./scripts/venv test

lint: venv
	$(VENV)/bin/ruff check .

fmt: venv
	$(VENV)/bin/ruff format jobserver definitions tests migrations
	$(VENV)/bin/ruff check --fix .

migrate: venv
	$(VENV)/bin/jobserver migrate
