# Sourced by the scripts a GPU loan runs (bench/gpu_session.sh, bench/gpu_train.sh): their common start and
# their steps. Each script defines `pack` (what goes into $OUT) before its first step.
#   DRY_RUN  1 with --dry-run: the same plumbing on a CPU
#   OUT      what comes back from the device ($OUT, at most 8 files); WORK: every step's logs and files
#   PY       the Python that runs the steps ($PYTHON, else python3: the device image's, which holds PyTorch)
set -uo pipefail
DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

step() {  # step NAME SECONDS COMMAND...: runs it with its output in NAME.log, records how it ended, packs
  # $OUT is the work folder for the command (the benchmarks write their JSON there); steps.txt holds
  # "NAME EXIT SECONDS LIMIT" lines, which bench/session_summary.py and the summaries read
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  OUT="$WORK" timeout -k 5 --signal=INT "$limit" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  echo "$name $rc $((SECONDS - started)) $limit" >> "$WORK/steps.txt"
  pack
}
