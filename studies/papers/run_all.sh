#!/usr/bin/env bash
# Run every paper-reproduction study, cheapest first, then publish each report to docs/results/<study>/.
# Resumable: finished cells are skipped, so run it again after an interruption. Hours on 2 CPU cores; run it in
# the background:  nohup studies/papers/run_all.sh > runs/papers.log 2>&1 &
# Needs ../shared/data and `make models-zh` (the Chinese studies use qwen2.5-0.5b-coder).
set -uo pipefail
cd "$(dirname "$0")/../.."
SDELAB=${SDELAB:-.venv/bin/sdelab}
STUDIES=${STUDIES:-"sde_maven sde_genia genft_cls genft_gen stm_bq sde_masa_en stm_lcqmc sde_masa_zh"}
for s in $STUDIES; do
  f=studies/papers/$s.yaml
  extra=()
  [ "$s" = stm_lcqmc ] && extra=(--reuse runs/lcqmc-paradigms)  # identical inst-first cells: copied, not retrained
  echo "== $f ($(date -u +%H:%M))"
  "$SDELAB" run "$f" "${extra[@]}" || { echo "!! $f failed (exit $?)"; continue; }
  name=$(basename "$(sed -n 's/^name: *//p' "$f")")
  "$SDELAB" report "$f" --publish "docs/results/$name"
done
