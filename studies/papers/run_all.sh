#!/usr/bin/env bash
# Run every paper-reproduction study, cheapest first, then publish each report to docs/results/<study>/.
# Resumable: finished cells are skipped and an interrupted cell resumes from its last checkpoint, so run it again
# after an interruption. Hours on 2 CPU cores; run it in the background:
#   nohup studies/papers/run_all.sh > runs/papers.log 2>&1 &
# Needs ../shared/data and `make models-zh` (the Chinese studies use qwen2.5-0.5b-coder).
set -uo pipefail
cd "$(dirname "$0")/../.."
SDELAB=${SDELAB:-.venv/bin/sdelab}
STUDIES=${STUDIES:-"sde_maven sde_genia genft_cls genft_gen stm_bq sde_masa_en stm_lcqmc sde_masa_zh"}
for s in $STUDIES; do
  f=studies/papers/$s.yaml
  extra=()
  # (stm_lcqmc could `--reuse runs/lcqmc-paradigms`, but those cells kept no per-item statistics: retrained)
  name=$(sed -n 's/^name: *//p' "$f")
  echo "== $f ($(date -u +%H:%M))"
  "$SDELAB" run "$f" "${extra[@]}" || { echo "!! $f failed (exit $?)"; continue; }
  # the SDE paper's prompt-vs-sample analysis: perplexities and 0/1-shot scores of each design on the base model
  # (after the cells: the fine-tuned comparison comes first; 100 items a set, resumable design by design)
  # (Chinese: zero-shot only, the signal its two claims use; a 1-shot pass would double the prompt length on the
  # 4x larger model: not measured, left out to save hours)
  if [[ $s == sde_masa_* && ! -f runs/$name/diagnostics.json ]]; then
    ks=(0 1); [[ $s == sde_masa_zh ]] && ks=(0)
    "$SDELAB" diagnose "$f" -n 100 -k "${ks[@]}" --size 100 || echo "!! diagnose $f failed (exit $?)"
  fi
  "$SDELAB" report "$f" --publish "docs/results/$name"
done
