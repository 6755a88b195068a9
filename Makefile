# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
export GATEWAY_DATABASE_URL ?= sqlite:///var/gateway.db

.PHONY: install lock audit-deps browser run test lint typecheck bench bench-search bench-consent bench-validation bench-notifications bench-peer bench-scaling bench-soak fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Every dependency, dev tools included, at the exact version and hashes of
# requirements/dev.lock (pip itself among them), then the project without deps.
$(VENV)/.installed: pyproject.toml requirements/dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

# Regenerates requirements/*.lock from pyproject.toml with a pinned uv, for
# Python 3.11 on every platform, with every file's hash. Versions already locked
# are kept while pyproject's ranges allow them, so the same inputs give the same
# lock; ARGS=--upgrade (or ARGS="--upgrade-package NAME") moves them on.
# runtime.lock is dev.lock's runtime part, at the same versions (the Dockerfile's);
# requirements/constraints.txt holds the few limits pyproject cannot express.
UV_VERSION := 0.13.8
LOCK_UV := $(VENV)/lock-tools/bin/uv
LOCK_FLAGS := --quiet --generate-hashes --universal --python-version 3.11 --custom-compile-command 'make lock'
lock:
	test -x $(LOCK_UV) || { $(PYTHON) -m venv $(VENV)/lock-tools && $(VENV)/lock-tools/bin/pip install --quiet uv==$(UV_VERSION); }
	$(LOCK_UV) pip compile pyproject.toml --extra dev -c requirements/constraints.txt $(LOCK_FLAGS) $(ARGS) -o requirements/dev.lock
	$(LOCK_UV) pip compile pyproject.toml -c requirements/dev.lock $(LOCK_FLAGS) -o requirements/runtime.lock

# Known vulnerabilities in the locked versions (pip-audit, without resolving
# again). Fails on any, and on pins it could not audit unless
# AUDIT_ARGS=--allow-unaudited (tools/audit_deps.py says why).
audit-deps: install
	$(BIN)/python tools/audit_deps.py requirements/dev.lock $(AUDIT_ARGS)

# A synthetic London (about 1,000 people across GP practices, councils, care
# homes, a hospital and the ambulance service) generated, loaded through the
# real mappings and served on loopback with the embedded SQLite store under
# ./var/, with one demo client per organisation (keys in var/demo/keys/). It
# prints a working command for each user's story. Later runs reuse it all.
run: install
	$(BIN)/gateway demo --host $(HOST) --port $(PORT)

# The console's browser tests drive Debian's chromium through chromium-driver:
# installed here where missing (as root, with apt); without them those tests are
# skipped, and under CI=true they fail.
browser:
	@command -v chromedriver >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
		|| echo "chromium-driver is not installed: the console's browser tests will be skipped"

test: install browser
	$(BIN)/python -m pytest

# The fuzzers for long (docs/fuzzing.md): each atheris target FUZZ_SECONDS
# (default 600) from its corpus in var/fuzz/, then the hypothesis API tests
# with many times the examples, on SQLite and PostgreSQL.
FUZZ_SECONDS ?= 600
fuzz: install
	$(BIN)/python -m tests.fuzz.long --seconds $(FUZZ_SECONDS)
	GATEWAY_FUZZ=long $(BIN)/python -m pytest tests/fuzz -k "not bounded_fuzzing_pass"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench.rest_core

# Loads 1,000,000 resources into SQLite and PostgreSQL through the write path
# and measures search latency on the way (long: see bench/search.py).
bench-search: install
	$(BIN)/python -m bench.search

# Consent enforcement in-process: the decision, a search and a record read,
# each with and without enforcement.
bench-consent: install
	$(BIN)/python -m bench.consent

# The validator generated from the R4 definitions against fhir.resources'
# models, per resource, back to back in one process.
bench-validation: install
	$(BIN)/python -m bench.validation

# An HL7 ADT feed loaded with and without 100 rest-hook subscribers (target:
# under 20% slower with them), and events/s through to acknowledged
# deliveries, on SQLite (ARGS="--stores sqlite,postgres --profile" for more).
bench-notifications: install
	$(BIN)/python -m bench.notifications $(ARGS)

# The gateway on SQLite and on PostgreSQL side by side with a real peer FHIR
# server, Medplum, built once outside the repository (docs/peer.md) and found
# through GATEWAY_BENCH_MEDPLUM (or ARGS="--medplum DIR"); without it, the
# gateway's half. Needs wrk and redis-server (Debian packages).
bench-peer: install
	$(BIN)/python -m bench.peer $(ARGS)

# One PostgreSQL store grown to 100,000, 300,000 and 1,000,000 resources, with
# search, document, read and create latency through gateway serve and every
# table's size at each step (long: about an hour on two cores; see
# bench/scaling.py and docs/scaling.md; ARGS="--sizes 5000,20000" is quick).
bench-scaling: install
	$(BIN)/python -m bench.scaling $(ARGS)

# Mixed load (reads, searches, writes, transactions, documents, HL7 v2 ingest)
# against gateway serve --workers 2 for 30 minutes: errors, p99 and each
# worker's RSS per window; passes on 0 errors and RSS flat within 10% after
# warm-up (ARGS="--minutes 3" is quick, ARGS="--store postgres" for PostgreSQL).
bench-soak: install
	$(BIN)/python -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
