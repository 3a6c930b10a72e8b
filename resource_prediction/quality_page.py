"""The book's *Allocation quality* page: the quality benchmark's tables, stated in words.

``make bench`` (``bench/bench_quality.py``) scores every family on every scenario of the generator
and on every real trace, each with default hyper-parameters and the champion chosen on validation,
and writes ``quality.json``. The project keeps its run of record in ``book/benchmarks/quality.json``
(with the commit and date it measured); a newer ``artifacts/bench/quality.json`` is preferred.
Every figure on the page is read from that file; nothing is typed in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.io as pio

from resource_prediction.glance import markdown_table
from resource_prediction.plots.quality import oracle_ratio_figure

__all__ = [
    "QUALITY_PAGE", "REFERENCE_BENCH", "family_ratio_table", "quality_markdown", "quality_table",
    "write_quality_page",
]

#: The page's file name in the book's results folder.
QUALITY_PAGE = "quality.md"
#: The benchmark of record, committed with the book (``book/benchmarks/quality.json``).
#:
#: :meta hide-value:
REFERENCE_BENCH = Path(__file__).resolve().parents[1] / "book" / "benchmarks" / "quality.json"
#: Baselines of today's practice that every champion is compared with.
BASELINES = ("configured_request", "max_seen", "vpa", "group_percentile")
#: Records of the benchmark JSON, and how the page names them.
SECTIONS = {"scenarios": "scenario", "scenario_seeds": "scenario, another seed", "traces": "trace",
            "traces_new_types": "trace, new task types", "traces_no_request": "trace, requests missing",
            "traces_longer_holdout": "trace, longer holdout"}
#: How the summary names the data sets of each trace section of :data:`SECTIONS`.
TRACE_SECTIONS = {"traces": "real traces", "traces_new_types": "traces with new task types",
                  "traces_no_request": "traces with a third of their task types given no request",
                  "traces_longer_holdout": "traces scored on their latest 20-40 %"}
#: The issue's bar: a champion within this multiple of its oracle.
ORACLE_BAR = 1.15


def _scores(record: dict) -> dict[str, float]:
    return {row["family"]: row["business_score"] for row in record["table"]
            if row.get("business_score") is not None}


def quality_table(results: dict) -> pd.DataFrame:
    """One row per data set: its champion's holdout score, the oracle's and today's baselines'."""
    rows = []
    for section, kind in SECTIONS.items():
        for record in results.get(section, []):
            scores = _scores(record)
            ratio = record.get("champion_ratio_to_oracle")
            rows.append({
                "data": record["data"], "kind": kind, "champion": record["champion"],
                "champion score": record["champion_score"],
                "under-allocated %": record["champion_under_pct"],
                "oracle": record.get("oracle_score"), "x oracle": ratio,
                "expected x oracle": record.get("champion_expected_ratio_to_oracle"),
                **{b: scores.get(b) for b in BASELINES},
            })
    return pd.DataFrame(rows)


def family_ratio_table(results: dict) -> pd.DataFrame:
    """Every family's holdout score as a multiple of the oracle's (families x scenarios)."""
    ratios = {record["data"]: {row["family"]: row.get("ratio_to_oracle") for row in record["table"]}
              for record in results.get("scenarios", [])}
    table = pd.DataFrame(ratios).drop(index="oracle", errors="ignore")
    return table.loc[table.mean(axis=1).sort_values().index] if len(table) else table


#: Columns whose values are names in the code (data sets, families).
CODE_COLUMNS = ("data", "champion", "family")


def _within_bar(table: pd.DataFrame, column: str) -> tuple[int, int, pd.Series] | None:
    """Scenarios with a ``column`` ratio, how many are within :data:`ORACLE_BAR`, and the furthest."""
    scenarios = table[table["kind"] == "scenario"].dropna(subset=[column])
    if not len(scenarios):
        return None
    return int((scenarios[column] <= ORACLE_BAR).sum()), len(scenarios), scenarios.sort_values(column).iloc[-1]


def _summary(table: pd.DataFrame) -> list[str]:
    lines = []
    if found := _within_bar(table, "x oracle"):
        within, total, worst = found
        lines.append(
            f"On {within} of {total} scenarios the champion is within {ORACLE_BAR:g} x "
            f"the oracle (the Bayes-optimal allocation of the generator); the furthest is "
            f"`{worst['data']}` at {worst['x oracle']:.3f} x.")
    if "expected x oracle" in table and (found := _within_bar(table, "expected x oracle")):
        within, total, worst = found
        lines.append(
            f"By expected cost (every scored job priced under its true peak distribution, free of "
            f"the luck of the peaks drawn), {within} of {total} are within {ORACLE_BAR:g} x; "
            f"the furthest is `{worst['data']}` at {worst['expected x oracle']:.3f} x.")
    for section, what in TRACE_SECTIONS.items():
        rows = table[table["kind"] == SECTIONS[section]]
        if not len(rows):
            continue
        baselines = rows[list(BASELINES)]
        beats = baselines.gt(rows["champion score"], axis=0) | baselines.isna()  # absent: no loss
        lost = [f"`{rows.loc[i, 'data']}` ({', '.join(b for b in BASELINES if not beats.loc[i, b])})"
                for i in rows.index if not beats.loc[i].all()]
        lines.append(
            f"On {int(beats.all(axis=1).sum())} of {len(rows)} {what} the champion scores below the "
            "configured request, `max_seen`, `vpa` and `group_percentile`"
            + (f"; not on {', '.join(lost)}." if lost else "."))
    return lines


def _seed_summary(results: dict) -> list[str]:
    """Per scenario scored on more seeds, its champion's mean ratio to the oracle over all of them."""
    lines = []
    records = results.get("scenario_seeds", [])
    for scenario in dict.fromkeys(r["scenario"] for r in records):
        runs = [r for r in results.get("scenarios", []) if r["data"] == scenario]
        runs += [r for r in records if r["scenario"] == scenario]
        parts = []
        for key, what in (("champion_ratio_to_oracle", "score"), ("champion_expected_ratio_to_oracle",
                                                                   "its expected cost")):
            values = pd.Series([r.get(key) for r in runs], dtype=float).dropna()
            if len(values):
                parts.append(f"{what} averages {values.mean():.3f} x the oracle's (from {values.min():.3f} "
                             f"to {values.max():.3f}; within {ORACLE_BAR:g} x on {int((values <= ORACLE_BAR).sum())} "
                             f"of {len(values)})")
        if parts:
            lines.append(f"Over {len(runs)} seeds of `{scenario}` (rows `{scenario}_seed_<seed>`), the "
                         "champion's " + "; ".join(parts) + ".")
    return lines


def quality_markdown(results: dict | None, source: str = "") -> str:
    """The *Allocation quality* page (MyST Markdown) of a ``quality.json`` (None: not measured)."""
    lines = ["# Allocation quality on data it was not tuned to", ""]
    if not results:
        return "\n".join(lines + ["No quality benchmark was found: `make bench` measures it "
                                  "(`artifacts/bench/quality.json`).", ""])
    when = ", ".join(f"{k} {results[k]}" for k in ("commit", "date") if results.get(k))
    lines += [
        f"Read from `{source or 'quality.json'}`" + (f" ({when})" if when else "") + ". Every family "
        "ran with its default hyper-parameters; the champion was chosen on the validation window "
        "inside the training period, as `resource-prediction evaluate` does, and every score is the "
        "business score on the latest 10 % of the jobs, replayed (lower is better). The scenarios "
        "are those of the generator ({doc}`../data`); the traces are real Nextflow runs, once as "
        "they are and once with every training task of a third of the task types that the latest "
        "10 % runs removed, so those types are new when it is replayed. Where the benchmark also "
        "scored each trace's latest 20, 30 and 40 % (trained on the rest), those rows are named "
        "`_latest_<share>`: a model deployed for longer before it is refitted. Rows named "
        "`_no_request` are a trace with the configured request of a third of its task types "
        "removed, as where processes set no memory directive. Rows named "
        "`<scenario>_seed_<seed>` score a scenario whose few scored jobs make one seed's figure a "
        "matter of luck on further seeds.", ""]
    table = quality_table(results)
    lines += [f"- {line}" for line in _summary(table) + _seed_summary(results)] + [""]
    digits = {"under-allocated %": 2, "x oracle": 3, "expected x oracle": 3}
    if table["expected x oracle"].isna().all():
        table = table.drop(columns="expected x oracle")
    lines += ["## Champions against the oracle and today's practice", "", markdown_table(table, digits, CODE_COLUMNS), ""]
    ratios = family_ratio_table(results)
    if len(ratios):
        best = ratios.index[0]
        lines += ["## Every family, as a multiple of the oracle", "",
                  f"Rows are sorted by their mean over the scenarios; `{best}` has the lowest, "
                  f"{ratios.loc[best].mean():.3f} x the oracle. The chart shows the four best and "
                  "what users run today (the configured request, `max_seen`) on a log scale.", "",
                  "```{raw} html", _figure_html(ratios), "```", "",
                  markdown_table(ratios.reset_index(names="family"), 3, CODE_COLUMNS), ""]
    return "\n".join(lines)


def _figure_html(ratios: pd.DataFrame) -> str:
    """The chart as HTML that calls the book's one copy of plotly.js (no CDN, no MathJax)."""
    return pio.to_html(oracle_ratio_figure(ratios), include_plotlyjs=False, include_mathjax=False,
                       full_html=False, default_width="100%", default_height=450,
                       div_id="quality-oracle-ratio",
                       config={"displaylogo": False})


def write_quality_page(target: str | Path, candidates: tuple[Path, ...] = (REFERENCE_BENCH,)) -> Path:
    """Write :func:`quality_markdown` of the first existing benchmark in ``candidates``."""
    found = next((Path(c) for c in candidates if Path(c).is_file()), None)
    results = json.loads(found.read_text()) if found else None
    # the page names the file by its place in the project, never by a machine path
    source = "" if found is None else f"{found.parent.parent.name}/{found.parent.name}/{found.name}"
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(quality_markdown(results, source))
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m resource_prediction.quality_page [--bench FILE] [--out FILE]``: write the page
    from ``--bench`` when it exists, else from the benchmark of record."""
    import argparse

    parser = argparse.ArgumentParser(description="Write the book's Allocation quality page.")
    parser.add_argument("--bench", type=Path, default=Path("artifacts") / "bench" / "quality.json")
    parser.add_argument("--out", type=Path, default=Path("book") / "results" / QUALITY_PAGE)
    args = parser.parse_args(argv)
    print(f"allocation quality -> {write_quality_page(args.out, (args.bench, REFERENCE_BENCH))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
