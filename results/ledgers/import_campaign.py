"""Migrate RL² Table 1's campaign runs (made with run_plan.sh before run records existed) into the
run-records ledger that ``metarl-bench reproduce rl2-table1`` reads and resumes from.

    python results/ledgers/import_campaign.py TRACKING_URI EXPERIMENT LEDGER PLAN_LEDGER...

Keeps the reporting seeds (0-2; seed 100 was tuning), and takes each run's wall and CPU seconds
from the plan ledgers' ``/usr/bin/time`` columns (wall_s, cpu_s), which those runs did not log.
"""

import sys

import pandas as pd

from benchmark.reporting.records import merge_records, records_from_store

uri, experiment, ledger, *plan_ledgers = sys.argv[1:]
records = records_from_store(uri, experiment)
records = records[records["seed"].isin([0, 1, 2])].copy()
timed = pd.concat([pd.read_csv(p) for p in plan_ledgers]).set_index("run_id")
for column, source in (("wall_seconds", "wall_s"), ("cpu_seconds", "cpu_s")):
    filled = records["run_id"].map(timed[source])
    records[column] = records[column].where(records[column].notna(), filled)
merged = merge_records(ledger, records)
print(f"{len(records)} records merged into {ledger} ({len(merged)} rows)")
