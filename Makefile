# Orthanc Gate: `make run` and `make test` install whatever is missing first (Debian 12, as root).
SHELL := /bin/bash
VENV := .venv
SYSTEM_PYTHON := /usr/bin/python3
ORTHANC := /usr/sbin/Orthanc
CONFIG := orthanc.json

.PHONY: run test test-1.12 unit lint bench bench-1.12 install system ohif clean

install: system $(VENV)/.installed ohif

system:
	@./scripts/install-system.sh

# The OHIF Viewer served at /ohif/: a pinned npm build, checked and cached in var/ohif/.
ohif:
	@$(SYSTEM_PYTHON) scripts/fetch_ohif.py

# The plugin runs on the Python that Orthanc embeds (Debian's), so the venv is made from it, by the
# same script the 1.12 lane and the image run.
$(VENV)/.installed: pyproject.toml scripts/install-gate.sh
	@./scripts/install-gate.sh --dev
	@touch $@

run: install
	@$(VENV)/bin/gatectl db-upgrade --config $(CONFIG)
	@$(VENV)/bin/gatectl ensure-admin --config $(CONFIG)
	@echo "Orthanc Gate: open http://localhost:8042/ and sign in (DICOM C-STORE on port 4242). Ctrl-C stops."
	GATE_HOME=$(CURDIR) TCP_NODELAY=1 $(ORTHANC) $(CONFIG)

# Two workers, each taking whole modules (a module's servers are its own): the integration tests
# spend most of their time waiting on Orthanc, so this halves the wall time on two CPUs.
# The Orthanc Explorer 2 tests (marker oe2) need Orthanc 1.12 and a built OE2: the 1.12 lane's.
test: install lint
	$(VENV)/bin/pytest -n 2 --dist loadfile -m "not oe2"

# The 1.12 lane: the whole suite again in a cached Debian 13 root (Orthanc 1.12, Python plugin 5),
# see scripts/lane-1.12.sh; OE2_PLUGIN=/path/libOrthancExplorer2.so adds the OE2 tests.
test-1.12: install
	OE2_PLUGIN="$(OE2_PLUGIN)" ./scripts/lane-1.12.sh

bench-1.12: install
	./scripts/lane-1.12.sh --bench

unit: install
	$(VENV)/bin/pytest tests/unit

lint: install
	$(VENV)/bin/ruff check plugin tests bench schema scripts

bench: install
	$(VENV)/bin/python bench/gate_throughput.py
	$(VENV)/bin/python bench/ldap_basic.py
	$(VENV)/bin/python bench/grants.py
	$(VENV)/bin/python bench/viewer_throughput.py
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/two_nodes.py

clean:
	rm -rf $(VENV) var .pytest_cache
