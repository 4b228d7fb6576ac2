"""The published tables ``metarl-bench reproduce TABLE`` reproduces: one spec each."""

from __future__ import annotations

from benchmark.studies import rl2_table1, rl2_table2, rl2_table3
from benchmark.studies.spec import TableSpec
from tasks import require

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (rl2_table1.SPEC, rl2_table2.SPEC, rl2_table3.SPEC)
}
"""Table name -> its spec."""


def get_table(name: str) -> TableSpec:
    """The spec of table ``name``; an unknown name is one line listing the valid ones."""
    require(name in TABLES, f"unknown table '{name}'; valid tables: {', '.join(sorted(TABLES))}")
    return TABLES[name]
