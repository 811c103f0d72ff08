# One entry point for users and CI. Every target sets itself up on a fresh machine that has only python3
# and make: uv is installed when missing, then `uv sync` creates .venv from the committed uv.lock.
#
#   make demo                      synthetic data -> build stages 1-3 -> train 1-3 on CPU -> track -> evaluate
#   make test                      the test suite (what .ci/run calls)
#   make build-data STAGE=1        build stage 1 of the real curriculum from DATA_ROOT into BUILD_ROOT
#   make train STAGE=2             train stage 2 from stage 1's best weights
#   make sweep STAGE=1             the plateau-remedies multirun of a stage

SHELL := /bin/bash
.DEFAULT_GOAL := help

STAGE ?= 1
CURRICULUM ?=
ARGS ?=
# Raw downloads and builds; the demo curriculum reads the synthetic sources from data/synth.
ifeq ($(CURRICULUM),demo)
DATA_ROOT ?= data/synth
RECIPE := conf/curricula/demo/stage$(STAGE).toml
else
DATA_ROOT ?= data/raw
RECIPE := conf/curricula/stage$(STAGE).toml
endif
BUILD_ROOT ?= data/builds
SYNTH_ROOT ?= data/synth
RUNS ?= runs

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
RUN := $(UV) run --frozen
export DATA_ROOT BUILD_ROOT

.PHONY: help setup demo test test-slow lint bad-input build-data train sweep synth dashboard compare viz clean-demo

help:
	@sed -n '1,12p' Makefile

# --- set-up -------------------------------------------------------------------------------------------
.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced

# --- data ---------------------------------------------------------------------------------------------
synth: setup
	$(RUN) python -m builder synth $(SYNTH_ROOT) --scale demo --seed 0

build-data: setup
	$(RUN) python -m builder build $(RECIPE) --data-root $(DATA_ROOT) --build-root $(BUILD_ROOT)

# --- training -----------------------------------------------------------------------------------------
train: setup
	$(RUN) python -m train stage=$(STAGE) $(ARGS)

sweep: setup
	$(RUN) python -m train -m stage=$(STAGE) experiment=plateau_remedies $(ARGS)

# --- the main job on the embedded default: synthetic data, CPU, minutes -------------------------------
demo: setup
	$(RUN) python -m train.demo --synth-root $(SYNTH_ROOT) --build-root $(BUILD_ROOT) --runs $(RUNS)/demo $(ARGS)

# --- seeing what happened -----------------------------------------------------------------------------
RUN_DIRS ?= $(RUNS)/demo/stage1/latest $(RUNS)/demo/stage2/latest $(RUNS)/demo/stage3/latest
dashboard: setup
	$(RUN) python -m train.dashboard $(RUN_DIRS) --out $(RUNS)/dashboard.png

# a sweep's runs (the newest multirun of STAGE by default), ranked by the monitored HOTA
COMPARE_DIRS ?= $(lastword $(sort $(wildcard $(RUNS)/multirun/stage$(STAGE)/*)))
compare: setup
	$(RUN) python -m train.compare $(or $(COMPARE_DIRS),$(RUN_DIRS)) --out $(RUNS)

# an MP4 of one demo val sequence: ground truth vs the stage-3 tracker (green/orange/blue/red/grey)
VIZ_ARGS ?= --build $(BUILD_ROOT)/demo_stage3 --split val \
	--results-dir $(RUNS)/demo/stage3/latest/eval/dancetrack/tracker --out $(RUNS)/viz.mp4
viz: setup
	$(RUN) python -m train.viz $(VIZ_ARGS)

# --- quality ------------------------------------------------------------------------------------------
test: setup
	$(RUN) pytest -n 2 -q

# tests marked slow (the synthetic demo's locked digests, demo builds, a shortened demo chain, sweeps, a 2-process
# DDP stage on the CPU); CI runs them too
test-slow: setup
	$(RUN) pytest -n 2 -q -m slow

lint: setup
	$(RUN) ruff check builder train tests benchmarks

# the bad-input and fault corpus (docs/BAD_INPUT.md): every case, and how many end in a traceback (target 0)
bad-input: setup
	$(RUN) python tests/bad_input_corpus.py

clean-demo:
	rm -rf $(SYNTH_ROOT) $(BUILD_ROOT)/demo_stage* $(RUNS)/demo
