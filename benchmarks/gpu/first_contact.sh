#!/usr/bin/env bash
# First contact with a GPU machine, in one go (<= 8 min on one H200): see docs/results/gpu/README.md.
#
#   benchmarks/gpu/first_contact.sh                # on the GPU machine, from the repo root; writes to $OUT
#   benchmarks/gpu/first_contact.sh --cpu --tiny   # here (tests/test_gpu_first_contact.py), so it cannot rot
#
# The GPU machine has torch (CUDA 13), transformers, peft and accelerate but no trl, datasets or
# bitsandbytes, and no network: whatever is missing is installed from the carried wheelhouse
# (`make gpu-wheelhouse` -> .whl/gpu) into a scratch site dir, never into the machine's own Python.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT="${OUT:-out/first_contact}"
WHEELHOUSE="${WHEELHOUSE:-.whl/gpu}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
LOG="$OUT/first_contact.log"
: > "$LOG"
say() { echo "[first_contact $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

say "python: $($PYTHON -c 'import sys; print(sys.version.split()[0])'); wheelhouse: $WHEELHOUSE"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG" || true

# Probe first: install only when something is missing, so the machine's own torch/transformers stay in charge.
missing=$($PYTHON - <<'PY'
import importlib.util
need = ["trl", "datasets", "bitsandbytes", "pydantic", "yaml", "pyarrow"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
PY
)
SITE="$(mktemp -d)/site"
if [ -n "$missing" ]; then
    if ! ls "$WHEELHOUSE"/*.whl >/dev/null 2>&1; then
        say "missing: $missing, and no wheels in $WHEELHOUSE (run make gpu-wheelhouse here and carry .whl)"
        exit 3
    fi
    say "missing: $missing; installing the wheelhouse into $SITE"
    # --no-deps: the wheelhouse holds exactly what that machine lacks (benchmarks/gpu/wheelhouse.py), and no
    # network is there to resolve anything else.
    $PYTHON -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        "$WHEELHOUSE"/*.whl >>"$LOG" 2>&1 || { say "pip install from the wheelhouse failed:"; tail -20 "$LOG"; exit 4; }
fi
export PYTHONPATH="$PWD:$SITE"
export TOKENIZERS_PARALLELISM=false LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

say "running benchmarks/gpu/first_contact.py $*"
$PYTHON -m benchmarks.gpu.first_contact --out "$OUT" --wheelhouse "$WHEELHOUSE" "$@" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
say "done (exit $status): $OUT/first_contact.json"
exit "$status"
