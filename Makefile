# The two commands of the README: `make demo` and `make test`. Everything they need is installed
# from here (system packages, the Python virtualenv, Kafka's jars, the Kubernetes binaries).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STEP := hack/step

.PHONY: help
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: system-deps
system-deps:  ## Debian packages: postgresql, redis-server, java, maven, containerd, runc, buildah, mmdebstrap; promtool (skipped when present)
	@$(STEP) "system packages" hack/install-system-deps

# The virtualenv is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(STEP) "python virtualenv" hack/install-venv $(VENV)

.PHONY: venv
venv: $(VENV)/.installed  ## the Python virtualenv with eventfleet (editable) and dev tools

.PHONY: stack
stack: system-deps  ## start (or reuse) the local stack: PostgreSQL, Redis, Kafka
	@$(STEP) "local stack up" hack/stack up

.PHONY: node
node: stack  ## the real node (kubelet, containerd, the Deployment controllers) and the eventfleet image loaded into it
	@$(STEP) "node up" hack/stack up node
	@$(STEP) "eventfleet image" hack/stack image

# A cold machine compiles Kubernetes for about 10 minutes: it starts first, in the background, so
# that the virtualenv, the image and PostgreSQL, Redis and Kafka are set up meanwhile; the stack's
# own build waits for it and reuses its binaries. Its log: .stack/k8s-build-early.log.
.PHONY: k8s-early
k8s-early: system-deps
	@mkdir -p .stack && (nohup hack/k8s/build > .stack/k8s-build-early.log 2>&1 &)

# The image builds beside the first, long compile of Kubernetes (mostly downloads: Debian and
# Python packages); `node` then waits for it and loads it. Its log: .stack/image-early.log.
.PHONY: image-early
image-early: system-deps
	@mkdir -p .stack && (nohup hack/stack image > .stack/image-early.log 2>&1 &)
	@echo "▶ eventfleet image: building in the background (log .stack/image-early.log)"

.PHONY: image
image: system-deps  ## build the eventfleet image from the Dockerfile (only when the source changed); load it into a running node
	@$(STEP) "eventfleet image" hack/stack image

.PHONY: down
down:  ## stop the local stack
	@hack/stack down

.PHONY: lint
lint: venv  ## ruff and mypy --strict
	@$(STEP) "ruff" $(VENV)/bin/ruff check .
	@$(STEP) "ruff format" $(VENV)/bin/ruff format --check .
	@$(STEP) "mypy --strict" $(VENV)/bin/mypy

.PHONY: unit
unit: venv  ## unit tests only (no services)
	@$(STEP) "unit tests" $(PY) -m pytest tests/unit -q

# The suite runs in two parts, every test once. The tests that need only PostgreSQL, Redis and
# Kafka run first, while a cold machine still compiles Kubernetes in the background (about
# 4 of the suite's 16 minutes, which used to wait behind the compile); the rest (the operator,
# the monitoring scrapes, the stack's own tests, the e2e on the node) once Kubernetes is up.
DATA_TESTS := tests/unit tests/integration/consumer tests/integration/gateway

.PHONY: data-stack
data-stack: system-deps
	@$(STEP) "PostgreSQL, Redis, Kafka up" hack/stack up postgres redis kafka

.PHONY: test
test: system-deps k8s-early venv image-early data-stack lint  ## set up everything and run the whole suite (the e2e on real pods)
	@source <(hack/stack env) && $(STEP) "tests on PostgreSQL, Redis and Kafka" $(PY) -m pytest -q $(DATA_TESTS)
	@$(MAKE) --no-print-directory stack node
	@source <(hack/stack env) && $(STEP) "tests on Kubernetes and the node" $(PY) -m pytest -q $(addprefix --ignore=,$(DATA_TESTS))

.PHONY: demo
demo: system-deps k8s-early venv image-early stack node  ## set up and run the whole pipeline on the real node, with readable output
	@source <(hack/stack env) && $(STEP) "demo" $(PY) hack/demo.py

.PHONY: demo-stop
demo-stop:  ## delete what the demo deployed (its namespaces and their pods; the stack keeps running)
	@source <(hack/stack env) && $(PY) hack/demo.py stop

.PHONY: loadtest
loadtest: venv  ## send realistic events to a running gateway: make loadtest TOTAL=100000 CONCURRENCY=50
	@$(PY) hack/loadtest.py $(or $(TOTAL),10000) $(or $(CONCURRENCY),50) $(LOADTEST_ARGS)

.PHONY: bench-gateway
bench-gateway: system-deps venv stack  ## the gateway's req/s and latency beside its ceiling (not part of make test)
	@source <(hack/stack env) && $(STEP) "gateway benchmark" hack/bench-gateway

.PHONY: bench-operator
bench-operator: system-deps venv stack  ## API round trip, apply -> Ready for 1 and 50 EventConsumers, scale-up latency (not part of make test)
	@source <(hack/stack env) && $(STEP) "operator benchmark" $(PY) hack/bench_operator.py

.PHONY: bench-operator-scale
bench-operator-scale: system-deps venv stack  ## 500 EventConsumers in 20 namespaces beside 1: Ready, CPU, RSS, API load, scale latency (about 5 min)
	@source <(hack/stack env) && $(STEP) "operator benchmark at scale" nice -n 10 $(PY) hack/bench_operator.py --scale $(or $(SCALE),500) --namespaces $(or $(NAMESPACES),20) $(BENCH_ARGS)

.PHONY: bench-pipeline
bench-pipeline: venv  ## after make demo: accept -> PostgreSQL latency at 1,000 events/s and peak throughput through all three modes
	@source <(hack/stack env) && $(STEP) "pipeline benchmark" $(PY) hack/bench_pipeline.py $(BENCH_ARGS)

.PHONY: bench-consumer
bench-consumer: system-deps venv stack  ## each consumer mode's events/s beside a raw ceiling and a naive baseline (not part of make test)
	@source <(hack/stack env) && $(STEP) "consumer benchmark" $(PY) hack/bench_consumer.py $(BENCH_ARGS)

.PHONY: clean
clean:  ## stop the stack and delete .stack/ and the virtualenv (caches in ~/.cache stay)
	-@hack/stack down
	rm -rf .stack $(VENV) .pytest_cache .mypy_cache .ruff_cache
