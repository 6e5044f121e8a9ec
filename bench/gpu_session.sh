#!/usr/bin/env bash
# One call on a lent GPU (the `device` tool's machine), most valuable first, within one 10-minute command:
#   1. the kernel tests in bf16 on the GPU (compiled, not interpreted)          ~1 min
#   2. bench/kernels.py --tune: the fused MoE at the real shapes, correctness,  ~3 min
#      GB/s, and the launch-configuration table ($OUT/moe.json ->
#      kernels/configs/moe.json)
#   3. bench/engine.py: ms per step and tokens/s, bf16 and fp8, kernels off/on  ~4 min
# Each step has its own time limit, so a slow one leaves the others their turn; everything lands under
# $OUT (logs, JSON, tables). Run from the repository root:  bash bench/gpu_session.sh
# transformers newer than the image's travels as a wheel in .whl/ (see README, "Engine").
set -uo pipefail
OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install --quiet --no-deps .whl/*.whl > "$OUT/pip.log" 2>&1 || echo "wheel install failed (see pip.log)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TRITON_INTERPRET=0  # compiled kernels; tests/conftest.py picks the interpreter only when this is unset
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  timeout --signal=INT "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc after $((SECONDS - started)) s" | tee -a "$OUT/steps.txt"
}

step kernel-tests 90 "$PY" -m pytest -q -p no:cacheprovider tests/kernels
step kernels 200 "$PY" bench/kernels.py --tune
step engine 260 "$PY" bench/engine.py --quantize none,fp8 --kernels off,on --batches 1,4 --no-reference

echo
cat "$OUT/gpu.csv"
cat "$OUT/steps.txt"
tail -n 3 "$OUT/kernel-tests.log"
tail -n 8 "$OUT/kernels.log"
tail -n 14 "$OUT/engine.log"
