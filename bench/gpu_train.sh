#!/usr/bin/env bash
# One call on a lent GPU (the `device` tool's machine): redraft-small trains on from its shipped weights (a second
# stage, every task of training/examples.py), then the shipped and the new model are measured side by side on the
# README's held-out paragraphs (training/text_quality.py on the machine's CPUs, every task: copies of both models
# whose declarations are widened for the purpose). Within one 10-minute command:
#   1. train     `python -m redraft.train --device cuda --minutes 5` from the packed corpus        330 s
#   2. quality   both models, fix / shorten / fill / continue, 12 paragraphs of each fixture file  200 s
# The machine has no Debian documentation packages and cannot reach apt: the corpus, its licences and the word
# list travel packed (training/corpus_file.py). Before the call, here:
#   .venv/bin/python -m redraft train --corpus english-docs --export-corpus .carry/english-docs.json.gz
# then `run` with carry [".carry"]: bash bench/gpu_train.sh
# The device returns at most 8 files from $OUT: the checkpoint, every log and the quality JSON go to a work
# folder packed into $OUT/train.tar.gz after each step, beside $OUT/summary.md (the quality table, printed last).
# Bringing the model home: tar -xzf train.tar.gz ./redraft-small, read the table, and if it does better, copy
# its files over engine/models/redraft-small and widen DECLARED_TASKS (redraft/train.py) to what it now does.
#
#   bash bench/gpu_train.sh --dry-run   # on a CPU: the same plumbing, 2 steps, 1 paragraph per file
#                                       # (tests/bench/test_gpu_train.py runs it in CI with a made-up corpus)
source bench/gpu_loan.sh "$@"  # DRY_RUN, OUT, WORK, PY and `step`
CORPUS="${CORPUS:-english-docs}"
CORPUS_FILE="${CORPUS_FILE:-.carry/english-docs.json.gz}"

pack() {
  tar -czf "$OUT/train.tar.gz" --exclude ./measured -C "$WORK" .
}

widen() {  # widen SRC NAME: a copy of checkpoint SRC under $WORK/measured/NAME that declares every measured task
  mkdir -p "$WORK/measured" && cp -r "$1" "$WORK/measured/$2"
  "$PY" -c "import json, sys; p = sys.argv[1]; c = json.load(open(p))
c['redraft']['tasks'] = ['fix', 'shorten', 'fill', 'continue']; json.dump(c, open(p, 'w'), indent=2)" \
    "$WORK/measured/$2/config.json"
}

if [ ! -f "$CORPUS_FILE" ]; then
  echo "$CORPUS_FILE is missing: pack it first (redraft train --corpus $CORPUS --export-corpus $CORPUS_FILE)" >&2
  exit 2
fi
if [ "$DRY_RUN" = 1 ]; then
  TRAIN=(--device cpu --steps 2 --batch-size 2)
  QUALITY=(--limit 1 --threads 2)
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$WORK/gpu.csv" 2>&1
  TRAIN=(--device cuda --minutes 5 --steps 1000000 --batch-size 64 --lr 1.5e-3 --threads 4)
  QUALITY=(--limit 12 --threads 8)
fi
# the quality figures' dictionary: the packed word list (the machine has no wamerican)
"$PY" -c "import sys; from pathlib import Path; from training.corpus_file import read_corpus_file
sys.stdout.write('\n'.join(read_corpus_file(Path(sys.argv[1])).word_list.words) + '\n')" "$CORPUS_FILE" \
  > "$WORK/words.txt"
step train 330 "$PY" -m redraft.train --corpus "$CORPUS" --corpus-file "$CORPUS_FILE" \
  --model engine/models/redraft-small --out "$WORK/redraft-small" --seed 2 "${TRAIN[@]}"
if [ -f "$WORK/redraft-small/model.safetensors" ]; then
  widen engine/models/redraft-small shipped
  widen "$WORK/redraft-small" trained
  step quality 200 "$PY" -m training.text_quality --models "$WORK/measured/shipped,$WORK/measured/trained" \
    --tasks fix,shorten,fill,continue --dictionary "$WORK/words.txt" --json "$WORK/quality.json" "${QUALITY[@]}"
else
  echo "no checkpoint came out of training: train.log says why" > "$WORK/quality.log"
fi

{
  echo "# bench/gpu_train.sh on $(uname -n), $(date -u +%FT%TZ)"
  echo
  cat "$WORK/gpu.csv" 2>/dev/null
  echo
  echo "| step | exit | seconds | limit |"
  echo "|---|---|---|---|"
  while read -r name code seconds limit; do echo "| $name | $code | $seconds | $limit |"; done < "$WORK/steps.txt"
  echo
  grep -E "^(\||[0-9]+ paragraphs)" "$WORK/quality.log" | sed "s#$WORK/measured/##g"
} > "$OUT/summary.md"
pack
echo
cat "$OUT/summary.md"
