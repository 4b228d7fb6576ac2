#!/bin/bash
# Runs one "metarl-bench run" probe at nice 19 from the worktree WT and appends its row to LEDGER.
set -u
label=$1; args=$2; LEDGER=$3; WT=${WT:-/work/wt-campaign}
COMMIT=$(git -C $WT rev-parse --short HEAD)
SCRATCH=/work/campaign/scratch; mkdir -p $SCRATCH
[ -f $LEDGER ] || echo "label,commit,command,seed,env_steps,train_seconds,wall_s,cpu_s,mean_total_reward,stderr,normalized_score,trials,per_episode_returns,run_id" > $LEDGER
out=$SCRATCH/$label.json; tm=$SCRATCH/$label.time
(cd $SCRATCH && PYTHONPATH=$WT /usr/bin/time -f "%e %U %S" -o $tm nice -n 19 /work/main/.venv/bin/python -m benchmark run $args --json > $out 2> $SCRATCH/$label.err)
if [ $? -ne 0 ]; then echo "$label FAILED" >&2; exit 1; fi
/work/main/.venv/bin/python - "$label" "$COMMIT" "$args" "$out" "$tm" "$LEDGER" <<'PY'
import csv, json, sys
label, commit, args, out, tm, ledger = sys.argv[1:]
s = json.loads(open(out).read().strip().splitlines()[-1])
wall, user, sys_ = (float(x) for x in open(tm).read().split()[-3:])
seed = next((a.split("=")[1] for a in args.split() if a.startswith("seed=")), "0")
from mlflow.tracking import MlflowClient
c = MlflowClient("sqlite:////work/campaign/scratch/mlflow.db")
ev = json.load(open(c.download_artifacts(s["run_id"], "evaluation.json", "/tmp")))
row = [label, commit, "metarl-bench run " + args + " --json", seed, s["env_steps"],
       round(s["train_seconds"], 1), wall, round(user + sys_, 1), s["mean_total_reward"], s["stderr"],
       s["normalized_score"], s["trials"], json.dumps(ev.get("per_episode_returns")), s["run_id"]]
csv.writer(open(ledger, "a")).writerow(row)
print(label, s["mean_total_reward"], s["stderr"], wall, flush=True)
PY
