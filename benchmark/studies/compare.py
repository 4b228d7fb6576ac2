"""Comparison with the published table: every cell gets its published value, and every flagged cell
a footnote from the spec's rules.

A table that rescales by its random-policy column (:attr:`TableSpec.rescale_by`) also gives every
cell that column's published value and its uncertainty: the published 1000-trial SE estimated from
our random cell's spread, and the rounding.
"""

from __future__ import annotations

import math

from benchmark.studies.cells import PUBLISHED_TRIALS, Cell, Results
from benchmark.studies.inputs import Run, published_errors
from benchmark.studies.spec import Column, Setting, TableSpec


def complete_table(
    run: Run, cells: list[Cell], published: dict[str, dict[str, float]]
) -> list[Cell]:
    """All cells of the run's settings in table order, compared; a missing one is "not run".

    Args:
        run: the invocation.
        cells: the cells measured (classical and learned).
        published: setting name -> column -> published value.
    """
    by_key = {cell.key: cell for cell in cells}
    errors = published_errors(run.spec)
    table = []
    for setting in run.settings:
        row = [
            by_key.get((setting.name, column.name)) or _not_run(setting, column)
            for column in run.spec.columns
        ]
        table += compare_row(run.spec, row, by_key, published[setting.name])
        for cell in row:
            cell.published_se = errors[setting.name].get(cell.column)
    return table


def complete_diagnostics(
    run: Run, cells: list[Cell], published: dict[str, dict[str, float]]
) -> list[Cell]:
    """The diagnostic cells of the run's settings, each compared with the column it names."""
    by_key = {cell.key: cell for cell in cells}
    found = []
    for setting in run.settings:
        row = [by_key.get((setting.name, c.name)) for c in run.spec.diagnostics]
        found += compare_row(run.spec, [c for c in row if c], by_key, published[setting.name])
    return found


def _not_run(setting: Setting, column: Column) -> Cell:
    return Cell(setting, column.name, column.strategy or column.algorithm, note="not run")


def compare_row(
    spec: TableSpec, row: list[Cell], by_key: dict[tuple[str, str], Cell], values: dict[str, float]
) -> list[Cell]:
    """``row`` (cells of one setting) with published values and rounding, and where the spec
    rescales, the published value of the random-policy column and its uncertainty.

    Args:
        spec: the table.
        row: the cells to compare (changed in place and returned).
        by_key: every measured cell by key (the row's random-policy cell is looked up here).
        values: the setting's published values, by column.
    """
    spread = None
    if spec.rescale_by is not None and row:
        random = by_key.get((row[0].setting.name, spec.rescale_by))
        if random is not None and random.stderr is not None:
            spread = math.hypot(
                random.stderr * math.sqrt(random.trials / PUBLISHED_TRIALS), spec.rounding_sd
            )
    for cell in row:
        cell.published = values.get(spec.column(cell.column).published_column)
        cell.rounding_sd = spec.rounding_sd
        if spec.rescale_by is not None:
            cell.random_published, cell.random_published_se = values[spec.rescale_by], spread
    return row


def reference_factors(table: list[Cell], column: str) -> dict[str, float]:
    """Per setting: our cell of ``column`` divided by its published value."""
    return {
        cell.setting.name: cell.mean / cell.published
        for cell in table
        if cell.column == column and cell.mean is not None and cell.published
    }


def footnotes(spec: TableSpec, results: Results) -> tuple[dict[tuple[str, str], int], list[str]]:
    """The footnote number of every flagged cell, and the footnote texts (each once).

    A flagged cell gets the footnote it carries from the invocation that measured it (a merged
    cell), else the text of the spec's first footnote rule that explains it, else the spec's
    ``unexplained`` text.
    """
    texts: list[str] = []
    refs: dict[tuple[str, str], int] = {}
    for cell in results.table:
        if not cell.flagged:
            continue
        reasons = (rule(cell, results) for rule in spec.footnote_rules)
        text = cell.footnote or next((r for r in reasons if r is not None), spec.unexplained)
        texts += [] if text in texts else [text]
        refs[cell.key] = texts.index(text) + 1
    return refs, texts
