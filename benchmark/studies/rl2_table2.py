"""RL² Table 2 (Duan et al. 2016, as transcribed in SNAIL): random tabular MDPs, normalised.

Five settings of ``tabular-mdp`` (10 states, 5 actions, horizon 10): 10, 25, 50, 75 and 100
episodes per trial. A cell is the mean total reward per trial divided by the oracle's mean
expected total (finite-horizon value iteration on the known MDP) over the same trials. Every cell
is also rescaled by the Random column, and a diagnostic column plays eps-Greedy with exploration
eps / sqrt(k) in episode k. A flagged cell's footnote, each measured by the same command:

- Random: the documented generator's exact random / oracle, by dynamic programming on
  ``REFERENCE_MDPS`` MDPs (0.458, not the published 0.482);
- the shared offset: a cell within 3 SE once rescaled by the Random column says so;
- eps-Greedy: where only the decaying diagnostic lands within 3 SE after rescaling, it says so;
- anything else is unexplained, with its rescaled z in the "Rescaled" table.

The learned columns (RL², LSTM-A2C) are shown raw and rescaled by the same Random-column factor,
and a section checks the published ordering of RL² against OPSRL (:data:`PUBLISHED_ORDER`).
"""

from __future__ import annotations

import math

from benchmark.run.tuning import EVAL_SPLIT
from benchmark.studies.cells import FLAG_Z, Cell, Results
from benchmark.studies.classical import Job, normalised_score
from benchmark.studies.compare import reference_factors
from benchmark.studies.inputs import Run
from benchmark.studies.spec import Column, TableSpec
from tasks import make_task, task_generator

FAMILY = "tabular-mdp"
REFERENCE_MDPS = 20_000
"""MDPs of the ``test`` stream over which the Random footnote's exact expectation is computed."""
RANDOM_RATIO = "random_ratio"
"""The evidence key of the documented generator's random / oracle and its SE."""
PUBLISHED_ORDER = {"10": "ahead", "25": "ahead", "50": "level", "75": "behind", "100": "behind"}
"""RL² against OPSRL in the published table, per setting (0.752 vs 0.694, 0.859 vs 0.819, 0.902
vs 0.897, 0.918 vs 0.931, 0.922 vs 0.951): ahead at 10 and 25 episodes, level at 50, behind at
75 and 100."""
Z_95 = 1.959964
"""The normal 97.5% quantile (OPSRL's interval over its trials)."""


def cost(job: Job) -> float:
    """Episodes x trials x the strategy's relative planning cost per episode."""
    per_step = {"opsrl": 3.0 * dict(job.params).get("samples", 1), "ucrl2": 8.0}
    return job.setting.task()["episodes"] * job.trials * per_step.get(job.strategy, 2.0)


def documented_random_ratio(seed: int, mdps: int = REFERENCE_MDPS) -> tuple[float, float]:
    """E[random] / E[oracle] of the documented generator, exact per MDP, and its standard error.

    Dynamic programming on ``mdps`` MDPs of the ``test`` stream of ``seed`` (the expectation does
    not depend on the episodes per trial).
    """
    family = make_task(FAMILY)
    references = family.reference_scores(family.sample(mdps, task_generator(seed, EVAL_SPLIT)))
    return normalised_score(references["random"], references["oracle"])


def measure_random_ratio(run: Run, results: Results) -> None:
    """The documented generator's random / oracle, for the Random column's footnote."""
    results.evidence[RANDOM_RATIO] = documented_random_ratio(run.seed)


def random_reason(cell: Cell, results: Results) -> str | None:
    """Footnote of the Random column: the documented generator's exact random / oracle."""
    if cell.column != "Random" or RANDOM_RATIO not in results.evidence:
        return None
    ratio, stderr = results.evidence[RANDOM_RATIO]
    return (
        "Random: the generator as documented (Dirichlet(1) transitions, Normal(1, 1) mean rewards, "
        f"start in state 0, horizon 10) gives random / oracle = {ratio:.4f} ± {stderr:.4f} in "
        f"expectation (finite-horizon dynamic programming on {REFERENCE_MDPS} MDPs of the `test` "
        "stream), not the published 0.482, so the published rows used a different generator or "
        "normaliser."
    )


def offset_reason(cell: Cell, results: Results) -> str | None:
    """Footnote of a cell that the Random column's shared offset explains."""
    if cell.rescaled_z is None or abs(cell.rescaled_z) > FLAG_Z:
        return None
    factors = reference_factors(results.table, "Random").values()
    return (
        "Shared offset: ours / published in the Random column is "
        f"{min(factors):.3f} to {max(factors):.3f} across the rows. Rescaled by it (ours "
        "divided by the random policy's expected total on the same trials, times the published "
        "Random value) this cell is within 3 standard errors of the published value; see "
        "'Rescaled by the Random column'."
    )


def decay_reason(cell: Cell, results: Results) -> str | None:
    """Footnote of an eps-Greedy cell that only the decaying-eps diagnostic brings within 3 SE."""
    for diagnostic in SPEC.diagnostics:
        matched = [
            d.setting.name
            for d in results.diagnostics
            if d.column == diagnostic.name
            and d.rescaled_z is not None
            and abs(d.rescaled_z) <= FLAG_Z
        ]
        if diagnostic.compares == cell.column and cell.setting.name in matched:
            return (
                "eps-Greedy: still more than 3 standard errors below after rescaling by the "
                f"Random column, while `{diagnostic.name}` (exploration eps / sqrt(k) in episode "
                "k, eps tuned over the same grid) is within 3 standard errors after rescaling at "
                f"{', '.join(matched)} episodes: consistent with a published eps-Greedy whose "
                "exploration decayed."
            )
    return None


def relation(difference: float, half_width: float) -> str:
    """``ahead`` when the 95% interval of ``difference`` lies above 0, ``behind`` when below,
    else ``level``."""
    if difference - half_width > 0:
        return "ahead"
    if difference + half_width < 0:
        return "behind"
    return "level"


def ordering(results: Results, column: str = "RL2", against: str = "OPSRL") -> list[dict]:
    """Per setting with both cells measured: ``column`` minus ``against`` (raw normalised scores),
    its 95% interval (``column``'s CI over seeds, or 1.96 SE with one seed, combined with
    ``against``'s 1.96 SE over trials), our relation and the published one."""
    cells = {cell.key: cell for cell in results.table}
    rows = []
    for name, published in PUBLISHED_ORDER.items():
        ours, other = cells.get((name, column)), cells.get((name, against))
        if ours is None or other is None or ours.mean is None or other.mean is None:
            continue
        ours_half = ours.ci95 if ours.ci95 is not None else Z_95 * ours.stderr
        half = math.hypot(ours_half, Z_95 * other.stderr)
        difference = ours.mean - other.mean
        found = relation(difference, half)
        rows.append(
            {"setting": name, "difference": difference, "half_width": half, "ours": found,
             "published": published, "reproduced": found == published, "n": len(ours.seeds)}
        )  # fmt: skip
    return rows


def ordering_section(run: Run, results: Results) -> list[str]:
    """The report's check of the published ordering of RL² against OPSRL."""
    rows = ordering(results)
    if not rows:
        return []
    lines = [
        "",
        "## RL² against OPSRL: the published ordering",
        "",
        "RL² minus OPSRL (normalised scores) with its 95% interval (RL²'s Student-t CI over "
        "seeds, or 1.96 SE with one seed, combined with 1.96 SE of OPSRL over trials): ahead, "
        "level (the interval covers 0) or behind.",
        "",
        "| episodes | published | ours: RL² − OPSRL | ours | reproduced |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {row['published']} | {row['difference']:+.3f} ± "
            f"{row['half_width']:.3f} (n={row['n']}) | {row['ours']} | "
            f"{'yes' if row['reproduced'] else 'no'} |"
        )
    matched = sum(row["reproduced"] for row in rows)
    return lines + ["", f"Published ordering reproduced at {matched} of {len(rows)} settings."]


SPEC = TableSpec(
    name="rl2-table2",
    title="RL² Table 2 (random tabular MDPs, normalised)",
    family=FAMILY,
    published_csv="rl2_table2_mdps_normalized.csv",
    setting_params=(("n_episodes", "episodes"),),
    setting_name="{episodes}",
    setting_help="episodes per trial",
    columns=(
        Column("Random", "random"),
        Column("eps-Greedy", "eps-greedy"),
        Column("PSRL", "psrl"),
        Column("OPSRL", "opsrl"),
        Column("UCRL2", "ucrl2"),
        Column("BEB", "beb"),
        Column("RL2", algorithm="rl2"),
        Column("LSTM-A2C", algorithm="lstm-a2c"),
    ),
    diagnostics=(
        Column(
            "eps-Greedy eps/sqrt(k)", "eps-greedy", fixed=(("decay", 0.5),), compares="eps-Greedy"
        ),
    ),
    score_text=(
        "mean total reward per trial divided by the oracle's mean expected total (finite-horizon "
        "value iteration on the known MDP) of the same trials, ± delta-method standard error,"
    ),
    unexplained=(
        "Unexplained: still more than 3 standard errors from the published value after "
        "rescaling by the Random column (see 'Rescaled by the Random column'); no measured "
        "reason found."
    ),
    cost=cost,
    published_digits=3,
    our_digits=3,
    normalised=True,
    rescale_by="Random",
    notes=(
        "BEB has no published value (the transcription omits it); it is reported for completeness.",
    ),
    footnote_rules=(random_reason, offset_reason, decay_reason),
    evidence=(measure_random_ratio,),
    sections=(ordering_section,),
)
"""RL² Table 2."""
