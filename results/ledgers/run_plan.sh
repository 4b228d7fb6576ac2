#!/bin/bash
# Runs each line "label | metarl-bench run args" of a plan file, one at a time, at nice 19, from the
# campaign worktree WT (run_one.sh); appends one CSV row per finished run to the ledger; skips
# labels already there, so it resumes.
set -u
PLAN=$1; LEDGER=$2; HERE=$(dirname "$0")
while IFS='|' read -r label args; do
  [[ "$label" =~ ^[[:space:]]*# ]] && continue  # a comment (it may hold quotes)
  label=$(echo $label | xargs); args=$(echo $args | xargs)
  [ -z "$label" ] && continue
  [ -f $LEDGER ] && grep -q "^$label," $LEDGER && continue
  bash "$HERE/run_one.sh" "$label" "$args" "$LEDGER"
done < $PLAN
