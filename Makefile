# The two commands a newcomer needs: `make demo` and `make test` (both run setup first).
.PHONY: setup demo test lint unit integration

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/schoolmon demo --duration $(or $(DURATION),30)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

test: lint
	.venv/bin/pytest -q

unit: setup
	.venv/bin/pytest -q tests/unit

integration: setup
	.venv/bin/pytest -q tests/integration
