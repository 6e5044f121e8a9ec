#!/usr/bin/env bash
# One call on a lent GPU (the `device` tool's machine), most valuable first, within one 10-minute command:
#   1. the kernel tests compiled on the GPU, in two processes at once          100 s
#   2. bench/head.py: the fused sampling head at the real shapes                 30 s
#   3. bench/kernels.py --only attention: the canvas attention at the real       30 s
#      shapes, correctness, CUDA-graph replay, time against cat + SDPA
#   4. bench/kernels.py --only moe: every default first, then a sweep for 35 s;   70 s
#   5. bench/kernels.py --only linear: the FP8/NF4 projections, a 15 s sweep      30 s
#      (4 and 5: the tuned tables are installed into kernels/configs for step 7)
#   6. bench/engine.py, the baseline: bf16, kernels off, batch 1 and 4, and     100 s
#      transformers' generate at 16 steps, the anchor of every comparison
#   7. bench/engine.py, the fast path: bf16, FP8 and NF4 with the kernels,      170 s
#      each first checked against the kernels off (--validate), then timed,
#      each part of the step alone too (--breakdown)
# The limits add up to 530 s; each is enforced with `timeout -k` (a process stuck in a compile is killed), so a
# slow step leaves the others their turn and the command ends inside 600 s.
#
# The device returns at most 8 files from $OUT: every log and JSON goes to a work folder that is packed into
# $OUT/session.tar.gz after every step, beside $OUT/summary.md, the one table (bench/session_summary.py), which
# is also printed last. The benchmarks rewrite their JSON after every row, so a step stopped by its limit keeps
# what it measured.
#
#   bash bench/gpu_session.sh             # on the GPU machine, from the repository root
#   bash bench/gpu_session.sh --dry-run   # on a CPU: the same plumbing with the tiny model, in about a minute
#                                         # (tests/bench/test_gpu_session.py runs it in CI)
# transformers newer than the image's travels as a wheel in .whl/ (see README, "Engine").
source bench/gpu_loan.sh "$@"  # DRY_RUN, OUT, WORK, PY and `step`

pack() {
  "$PY" bench/session_summary.py "$WORK" > "$OUT/summary.md" 2> "$WORK/summary.err"
  tar -czf "$OUT/session.tar.gz" -C "$WORK" .
}

if [ "$DRY_RUN" = 1 ]; then
  export TRITON_INTERPRET=1
  echo "dry run on $(uname -n): the tiny model on the CPU, kernels through Triton's interpreter" > "$WORK/gpu.csv"
  # A step over its limit is stopped and the session goes on: the dry run's proof of the time limits.
  step overrun 1 sleep 30
  # The CUDA-only benchmarks say so and exit 2; the summary reports the exit.
  step head 30 "$PY" bench/head.py
  step engine-baseline 120 "$PY" bench/engine.py --device cpu --model tiny --prompt-len 16 --batches 1 \
    --repeats 1 --json "$WORK/engine-baseline.json"
  step engine-fast 120 "$PY" bench/engine.py --device cpu --model tiny --prompt-len 16 --batches 1 \
    --repeats 1 --kernels off --validate --no-reference --json "$WORK/engine-fast.json"
else
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install --quiet --no-deps .whl/*.whl > "$WORK/pip.log" 2>&1 || echo "wheel install failed (pip.log)"
  fi
  export TRITON_INTERPRET=0  # compiled kernels; tests/conftest.py picks the interpreter only when this is unset
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$WORK/gpu.csv" 2>&1
  # Two processes compile at once (the machine has 16 cores); the engine test is the longest file. The offline
  # compile check needs no GPU: CI runs it.
  step kernel-tests 100 bash -c "
    $PY -m pytest -q -p no:cacheprovider tests/kernels/test_engine_kernels.py tests/kernels/test_head.py \
      > '$WORK/kernel-tests-a.log' 2>&1 & a=\$!
    $PY -m pytest -q -p no:cacheprovider tests/kernels --deselect tests/kernels/test_offline_compile.py \
      --ignore tests/kernels/test_engine_kernels.py --ignore tests/kernels/test_head.py \
      > '$WORK/kernel-tests-b.log' 2>&1 & b=\$!
    wait \$a; ra=\$?; wait \$b; rb=\$?
    tail -n 3 '$WORK/kernel-tests-a.log' '$WORK/kernel-tests-b.log'
    exit \$((ra | rb))"
  step head 30 "$PY" bench/head.py
  step attention 30 "$PY" bench/kernels.py --only attention
  step moe 70 "$PY" bench/kernels.py --only moe --tune --tune-seconds 35
  step linear 30 "$PY" bench/kernels.py --only linear --tune --tune-seconds 15
  for kernel in moe linear; do  # the tuned tables reach the engine step of the same run
    if [ -s "$WORK/$kernel.json" ]; then
      cp "$WORK/$kernel.json" "kernels/configs/$kernel.json" && cp "$WORK/$kernel.json" "$WORK/installed-$kernel.json"
    fi
  done
  step engine-baseline 100 "$PY" bench/engine.py --quantize none --kernels off --batches 1,4 \
    --json "$WORK/engine-baseline.json"
  step engine-fast 170 "$PY" bench/engine.py --quantize none,fp8,nf4 --kernels on --validate --batches 1,4 \
    --breakdown --no-reference --repeats 3 --json "$WORK/engine-fast.json"
fi

pack
echo
cat "$OUT/summary.md"
