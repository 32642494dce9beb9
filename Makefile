# The two commands a newcomer needs: `make demo` and `make test` (both run setup first);
# `make test-faults` runs the long fault scenarios (satellite link, link flaps, kills, full
# disks, slow storage) that would push `make test` past 30 minutes.  CI runs both.
.PHONY: setup demo test test-faults lint unit integration dist

# The release artifact the Ansible roles install: $(DIST)/schoolmon-<version>-py3-none-any.whl,
# <version> from schoolmon/__init__.py (the one place it is written).  Built from this checkout
# (setuptools as pyproject's build-system asks, in pip's isolated build environment) without
# dependencies: targets resolve those from their index or a wheelhouse (docs/deploy.md).
PYTHON ?= .venv/bin/python
DIST ?= dist
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' schoolmon/__init__.py)

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/schoolmon demo --duration $(or $(DURATION),30)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

test: lint
	.venv/bin/pytest -q -m "not faults"

test-faults: setup
	.venv/bin/pytest -q -m faults

unit: setup
	.venv/bin/pytest -q tests/unit

integration: setup
	.venv/bin/pytest -q tests/integration

dist:
	@test -n "$(VERSION)" || { echo "no __version__ in schoolmon/__init__.py" >&2; exit 2; }
	@# A stale build/ would put modules deleted since the last build into the wheel.
	rm -rf build
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(DIST) .
	rm -rf build
	@test -f $(DIST)/schoolmon-$(VERSION)-py3-none-any.whl
	@echo $(DIST)/schoolmon-$(VERSION)-py3-none-any.whl
