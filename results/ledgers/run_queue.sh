#!/bin/bash
# A campaign worker (run_plan.sh over a queue of plans): re-reads queue.txt ("PLAN LEDGER" per
# line, in priority order) before every run, runs the first plan line whose label is neither in its
# ledger nor in failed.txt, and waits for new lines when none is left. WT: the worktree. Stop it by
# creating /work/campaign/STOP.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); cd /work/campaign; touch failed.txt
while [ ! -f STOP ]; do
  next=""
  while read -r plan ledger; do
    [ -z "$plan" ] && continue; [[ "$plan" == \#* ]] && continue
    while IFS='|' read -r label args; do
      [[ "$label" =~ ^[[:space:]]*# ]] && continue  # a comment (it may hold quotes)
      label=$(echo $label | xargs); args=$(echo $args | xargs)
      [ -z "$label" ] && continue
      [ -f $ledger ] && grep -q "^$label," $ledger && continue
      grep -qx "$label" failed.txt && continue
      next="$label|$args|$ledger"; break
    done < $plan
    [ -n "$next" ] && break
  done < queue.txt
  if [ -z "$next" ]; then sleep 20; continue; fi
  IFS='|' read -r label args ledger <<< "$next"
  echo "start $label $(date +%T)"
  bash "$HERE/run_one.sh" "$label" "$args" "$ledger" || echo "$label" >> failed.txt
done
