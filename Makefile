# labdeck: two set-up commands for people (`make up`, `make test`); the rest
# are the steps they are made of.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.labdeck-installed
CHP := node_modules/.bin/configurable-http-proxy
PYTEST_ARGS ?=

.PHONY: up test deps unit integration browser-deps prometheus-deps r-deps r-kernel kube-up kube-down kube-binaries bench clean

## up: install everything into .venv/node_modules and run the platform on http://127.0.0.1:8000
up: deps
	$(VENV)/bin/labdeck up

## test: run the whole test suite (unit, integration, chart, browser)
test: deps browser-deps prometheus-deps r-deps
	$(PY) tests/run.py $(PYTEST_ARGS)

LABEXT := $(VENV)/share/jupyter/labextensions/@labdeck/lab/package.json
LABEXT_DATA := $(VENV)/share/jupyter/labextensions/@labdeck/data/package.json

LSPCONF := $(VENV)/etc/jupyter/jupyter_server_config.d/labdeck-language-servers.json

deps: $(STAMP) $(CHP) $(LABEXT) $(LABEXT_DATA) $(LSPCONF)

# the language servers installed in .venv, found once here instead of at every server start
$(LSPCONF): $(STAMP) spawner/userserver/lspdetect.py
	$(PY) -m labdeck.spawner.userserver.lspdetect $@

# labdeck's prebuilt JupyterLab extension (share dialog, Shares panel); the build is cached in ~/.cache/labdeck
$(LABEXT): $(STAMP) images/singleuser/build-labextension.sh runs/labextension/package.json runs/labextension/package-lock.json $(wildcard runs/labextension/src/*.js runs/labextension/style/*.css)
	images/singleuser/build-labextension.sh runs/labextension $(VENV)
	touch $@

# labdeck's data extension (S3 drive, BigQuery panel); built and cached the same way (~/.cache/labdeck)
$(LABEXT_DATA): $(STAMP) images/singleuser/build-labextension.sh data/labextension/package.json data/labextension/package-lock.json $(wildcard data/labextension/src/*.js data/labextension/style/*.css)
	images/singleuser/build-labextension.sh data/labextension $(VENV)
	touch $@

$(STAMP): pyproject.toml images/hub/requirements.txt images/singleuser/requirements.txt images/singleuser/overrides.json images/singleuser/jupyter_server_config.d/labdeck.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r images/hub/requirements.txt -r images/singleuser/requirements.txt -e ".[local,kube,oidc,test]"
	# JupyterLab defaults shared with the single-user image (no news prompt, no update check)
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp images/singleuser/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	# user servers: jupyter-scheduler on labdeck's runs service, the share dialog's API (as the image)
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	cp images/singleuser/jupyter_server_config.d/labdeck.json $(VENV)/etc/jupyter/jupyter_server_config.d/labdeck.json
	touch $@

$(CHP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## browser-deps: Debian's Chromium for the browser tests (Playwright drives it; it never downloads browsers)
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	else echo "labdeck: the browser tests need Debian's chromium at /usr/bin/chromium; run 'sudo make browser-deps' (or: sudo apt-get install -y chromium)" >&2; exit 1; fi

## prometheus-deps: Debian's Prometheus and promtool for the metrics tests (alert unit tests, a real scrape of `make up`)
prometheus-deps:
	@if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; \
	else echo "labdeck: the metrics tests need Debian's prometheus package (/usr/bin/prometheus, /usr/bin/promtool); run 'sudo make prometheus-deps' (or: sudo apt-get install -y prometheus)" >&2; exit 1; fi

## r-deps: Debian's R, IRkernel and the R packages the R tests drive (gargle, httr2, reticulate, jsonlite),
## so the "JupyterLab with R" and R credential tests run instead of skipping
R_DEBS := r-base-core r-cran-irkernel r-cran-gargle r-cran-httr2 r-cran-reticulate r-cran-jsonlite
r-deps:
	@if command -v Rscript >/dev/null && Rscript -e 'for (p in c("IRkernel", "gargle", "httr2", "reticulate", "jsonlite")) library(p, character.only = TRUE)' >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q --no-install-recommends $(R_DEBS); \
	else echo "labdeck: the R tests need Debian's R packages; run 'sudo make r-deps' (or: sudo apt-get install -y $(R_DEBS))" >&2; exit 1; fi

## r-kernel: install R and IRkernel from Debian (root) so the local mode offers "JupyterLab with R"
## (Debian's r-cran-irkernel registers the `ir` kernelspec in /usr/share/jupyter/kernels)
r-kernel:
	apt-get install -y --no-install-recommends r-base-core r-cran-irkernel

## kube-binaries: build (once) and cache kube-apiserver and kube-controller-manager for the tests/kube harness (~5 min cold)
kube-binaries:
	bash tests/kube/build-apiserver.sh
	bash tests/kube/build-apiserver.sh kube-controller-manager

## kube-up: run a local etcd + kube-apiserver on 127.0.0.1 (prints KUBECONFIG; Ctrl-C stops)
kube-up: $(STAMP) kube-binaries
	$(PY) -m tests.kube.cluster up

## bench: one-at-a-time spawns and a storm of 40, labdeck vs a clean vanilla JupyterHub (bench/results/)
bench: deps
	$(PY) bench/vanilla_venv.py
	$(PY) bench/spawn.py --reps 7
	$(PY) bench/storm.py --users 40

clean:
	rm -rf $(VENV) node_modules
