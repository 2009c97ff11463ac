# Two commands matter: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests need: git for the repositories, OpenSSH for the sandbox's SSH endpoint, file for
# the MIME types tfx writes into the .vsix.
APT_PACKAGES := git openssh-client openssh-server file
# The extension: tfx-cli pinned in package-lock.json; the task's Python wheels pinned by constraints.txt.
NODE_STAMP := node_modules/.package-lock.json
WHEELHOUSE := build/wheelhouse
WHEELHOUSE_STAMP := $(WHEELHOUSE)/.complete
EXTENSION_ROOT := build/extension
TFX := node_modules/.bin/tfx
# The Marketplace publisher the .vsix is built for: `make vsix PUBLISHER=contoso` gives
# dist/contoso.flux-azdo-<version>.vsix for your own (private) publisher; vss-extension.json names flux-azdo.
PUBLISHER ?= flux-azdo

.PHONY: demo task-demo test lint typecheck unit bench system-deps node-deps wheelhouse vsix clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "missing Debian packages:$$missing (run: sudo apt-get install$$missing)"; exit 1; fi; \
	fi
	@# kubectl: the machine's own when it has one (any release since 1.20), else Debian's kubernetes-client.
	@command -v kubectl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client; \
	  else echo "kubectl is missing (run: sudo apt-get install kubernetes-client)"; exit 1; fi; }

# Node (20 or newer) runs the task's launcher in the tests and tfx for `make vsix`.
$(NODE_STAMP): package.json package-lock.json
	@command -v node >/dev/null 2>&1 || { echo "node is missing (install Node.js 20 or newer)"; exit 1; }
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

node-deps: $(NODE_STAMP)

# Binary wheels for every Linux platform and CPython the task ships (network: pip download, once).
$(WHEELHOUSE_STAMP): $(STAMP) constraints.txt
	$(BIN)/python task/stage.py --download --wheelhouse $(WHEELHOUSE)
	touch $(WHEELHOUSE_STAMP)

wheelhouse: $(WHEELHOUSE_STAMP)

# dist/<publisher>.<id>-<version>.vsix; stage.py refuses when task.json and vss-extension.json versions differ.
# tfx runs `file` for the MIME types it records (Debian package file, also installed by `make system-deps`).
vsix: $(STAMP) $(NODE_STAMP) $(WHEELHOUSE_STAMP)
	@command -v file >/dev/null 2>&1 || { echo "file is missing: tfx needs it (run: sudo apt-get install file, or make system-deps)"; exit 1; }
	$(BIN)/python task/stage.py --wheelhouse $(WHEELHOUSE) --extension-root $(EXTENSION_ROOT)
	mkdir -p dist
	$(TFX) extension create --no-prompt --no-color --root $(EXTENSION_ROOT) \
	  --manifests vss-extension.json --publisher $(PUBLISHER) --output-path dist

demo: $(STAMP)
	$(BIN)/flux-azdo demo

# The pipeline task, as a pipeline would run it: staged offline for this interpreter (no wheelhouse, no network),
# then run twice by the sandbox's simulated agent. Node 20 or newer runs its launcher.
TASK_DEMO_ROOT := build/task-demo
task-demo: $(STAMP)
	@command -v node >/dev/null 2>&1 || { echo "node is missing (install Node.js 20 or newer)"; exit 1; }
	$(BIN)/python task/stage.py --from-venv --out $(TASK_DEMO_ROOT)
	$(BIN)/flux-azdo demo --task $(TASK_DEMO_ROOT)/FluxBootstrapV1

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks task
	$(BIN)/ruff format --check src tests benchmarks task

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) system-deps $(NODE_STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/task_package.py

clean:
	rm -rf $(VENV) build dist node_modules .pytest_cache .mypy_cache .ruff_cache
