# labdeck: two set-up commands for people (`make up`, `make test`); the rest
# are the steps they are made of.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.labdeck-installed
CHP := node_modules/.bin/configurable-http-proxy
PYTEST_ARGS ?=

.PHONY: up test deps unit integration browser-deps r-kernel kube-up kube-down kube-binaries bench clean

## up: install everything into .venv/node_modules and run the platform on http://127.0.0.1:8000
up: deps
	$(VENV)/bin/labdeck up

## test: run the whole test suite (unit, integration, chart, browser)
test: deps
	$(PY) tests/run.py $(PYTEST_ARGS)

deps: $(STAMP) $(CHP)

$(STAMP): pyproject.toml images/hub/requirements.txt images/singleuser/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r images/hub/requirements.txt -r images/singleuser/requirements.txt -e ".[local,kube,oidc,test]"
	touch $@

$(CHP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## r-kernel: install R and IRkernel from Debian so the local mode can offer "JupyterLab with R"
r-kernel: deps
	apt-get install -y --no-install-recommends r-base-core r-cran-irkernel
	Rscript -e 'IRkernel::installspec(prefix="$(CURDIR)/$(VENV)")'

## kube-binaries: build (once) and cache kube-apiserver for the tests/kube harness (~5 min cold)
kube-binaries:
	bash tests/kube/build-apiserver.sh

## kube-up: run a local etcd + kube-apiserver on 127.0.0.1 (prints KUBECONFIG; Ctrl-C stops)
kube-up: deps kube-binaries
	$(PY) -m tests.kube.cluster up

clean:
	rm -rf $(VENV) node_modules
