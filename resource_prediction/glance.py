"""Results at a glance: the headline of a run, read from the reports it wrote.

Every figure comes from ``reports/champions.json``, ``reports/holdout_results.json`` (or ``.csv``),
``reports/pareto.csv`` and ``reports/frontier.csv`` of an artifacts directory; nothing is typed in.
Columns are read by name, so reports with more rows or columns (new baselines, new families) still
work.
:func:`write_glance_page` writes the book's *Results at a glance* page from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from resource_prediction.paths import ArtifactPaths

__all__ = ["GLANCE_PAGE", "glance_markdown", "glance_table", "markdown_table", "read_reports",
           "write_glance_page"]

#: Task types that are not models (rows of the holdout table beside the searched families).
NOT_MODELS = ("baseline", "oracle")
REQUEST = "configured_request"
#: The page's file name in the book's results folder.
GLANCE_PAGE = "glance.md"
COLUMNS = ["model", "role", "business score", "95 % interval", "under-allocated jobs %",
           "total over-allocation %"]


def read_reports(paths: ArtifactPaths) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
    """The run's champions, holdout table and the points of its frontiers (``reports/pareto.csv``
    and ``reports/frontier.csv``; ``None`` when neither was written), exported variants named."""
    reports = paths.reports
    champions = json.loads((reports / "champions.json").read_text())
    results = reports / "holdout_results.json"
    holdout = pd.read_json(results) if results.exists() else pd.read_csv(reports / "holdout_results.csv")
    # Exported variants: the quantile ensemble's (pareto.csv) and the cost-aware safe one (frontier.csv).
    tables = [pd.read_csv(reports / name) for name in ("pareto.csv", "frontier.csv")
              if (reports / name).exists()]
    variants = pd.concat(tables, ignore_index=True) if tables else None
    return champions, holdout, variants


def _scored(holdout: pd.DataFrame) -> pd.DataFrame:
    ok = holdout["business_score"].notna()
    if "error" in holdout:
        ok &= holdout["error"].fillna("").astype(str).eq("")
    return holdout[ok]


def _row(r: pd.Series, role: str) -> dict:
    low, high = r.get("ci_low", np.nan), r.get("ci_high", np.nan)
    interval = f"{low:.1f} to {high:.1f}" if pd.notna(low) and pd.notna(high) else ""
    return {"model": r["family"], "role": role, "business score": round(float(r["business_score"]), 1),
            "95 % interval": interval, "under-allocated jobs %": round(float(r["under_pct"]), 2),
            "total over-allocation %": round(float(r["total_over_pct"]), 1)}


def exported_variants(variants: pd.DataFrame | None) -> pd.DataFrame:
    """The frontier points exported as variants, with their holdout figures (empty if none)."""
    if variants is None or "variant" not in variants:
        return pd.DataFrame()
    named = variants[variants["variant"].fillna("").astype(str) != ""]
    needed = ["holdout_business_score", "holdout_under_pct", "holdout_total_over_pct"]
    if not set(needed) <= set(named.columns):
        return pd.DataFrame()
    return named.dropna(subset=needed)


def glance_table(champions: dict, holdout: pd.DataFrame, variants: pd.DataFrame | None) -> pd.DataFrame:
    """Champion, configured request, best baseline, oracle and exported variants on the holdout."""
    scored = _scored(holdout).set_index("family", drop=False)
    rows = []
    champion = (champions.get("champions") or {}).get("overall")
    if champion in scored.index:
        rows.append(_row(scored.loc[champion], "champion"))
    if REQUEST in scored.index:
        rows.append(_row(scored.loc[REQUEST], "configured request (today)"))
    baselines = scored[(scored["task_type"] == "baseline") & (scored["family"] != REQUEST)]
    if len(baselines):
        rows.append(_row(baselines.sort_values("business_score").iloc[0], "best other baseline"))
    if "oracle" in scored.index:
        rows.append(_row(scored.loc["oracle"], "oracle (best possible)"))
    for v in exported_variants(variants).itertuples():
        rows.append(_row(pd.Series({
            "family": v.variant, "business_score": v.holdout_business_score,
            "under_pct": v.holdout_under_pct, "total_over_pct": v.holdout_total_over_pct,
        }), "exported variant"))
    return pd.DataFrame(rows, columns=COLUMNS)


def _safer_choice(table: pd.DataFrame, holdout: pd.DataFrame, limit: float) -> pd.Series | None:
    """The best-scoring model or variant that fails no more jobs than ``limit`` %."""
    scored = _scored(holdout)
    models = scored[~scored["task_type"].isin(NOT_MODELS)]
    candidates = pd.concat([
        table[table["role"] == "exported variant"],
        pd.DataFrame([_row(r, "model") for _, r in models.iterrows()], columns=COLUMNS),
    ])
    safe = candidates[candidates["under-allocated jobs %"] <= limit]
    return None if safe.empty else safe.sort_values("business score").iloc[0]


def glance_markdown(paths: ArtifactPaths) -> str:
    """The *Results at a glance* page (MyST Markdown) of the run under ``paths``."""
    champions, holdout, variants = read_reports(paths)
    table = glance_table(champions, holdout, variants)
    prov = champions.get("provenance", {})
    lines = ["# Results at a glance", ""]
    intro = (
        f"The run scored every model on the holdout: the latest {prov.get('n_holdout', '?'):,} jobs "
        f"(from {str(prov.get('holdout_start', '?'))[:10]}), which no model or search saw. Business "
        f"score = {prov.get('penalty', 5):g} x under-allocated jobs % + total over-allocation % "
        "(lower is better); the 95 % interval is a bootstrap over the jobs. Every figure on this page "
        "is read from the run's reports (`reports/holdout_results.json`, `reports/champions.json`, "
        "`reports/pareto.csv`, `reports/frontier.csv`)."
    ) if prov else "Every figure on this page is read from the run's reports."
    lines += [intro, ""]
    by_role = table.set_index("role")
    if "champion" not in by_role.index:
        lines += ["No model could be evaluated in this run: there is no champion yet.", ""]
    else:
        champ = by_role.loc["champion"]
        text = (f"**The champion is `{champ['model']}`**: business score **{champ['business score']:.1f}** "
                f"(95 % interval {champ['95 % interval']}), {champ['under-allocated jobs %']:.2f} % of "
                f"the jobs under-allocated, {champ['total over-allocation %']:.1f} % total over-allocation.")
        if "configured request (today)" in by_role.index:
            today = by_role.loc["configured request (today)"]
            gain = today["business score"] - champ["business score"]
            text += (f" Today's configured request scores {today['business score']:.1f} "
                     f"({today['under-allocated jobs %']:.2f} % under-allocated, "
                     f"{today['total over-allocation %']:.1f} % over-allocation): the champion is "
                     f"{abs(gain):.1f} points {'better' if gain >= 0 else 'worse'}.")
        if "oracle (best possible)" in by_role.index:
            oracle = by_role.loc["oracle (best possible)"]
            text += (f" The oracle, the best any allocation can expect on these jobs, scores "
                     f"{oracle['business score']:.1f}: the champion is at "
                     f"{champ['business score'] / oracle['business score']:.2f} x the oracle.")
        lines += [text, ""]
        if "configured request (today)" in by_role.index:
            limit = by_role.loc["configured request (today)", "under-allocated jobs %"]
            if champ["under-allocated jobs %"] > limit:
                safer = _safer_choice(table, holdout, limit)
                warn = (f"**The champion fails more jobs than today's configuration**: "
                        f"{champ['under-allocated jobs %']:.2f} % of the jobs under-allocated against "
                        f"{limit:.2f} % for the configured request.")
                if safer is not None:
                    warn += (f" Where failed jobs matter more than the score, deploy `{safer['model']}` "
                             f"instead: {safer['under-allocated jobs %']:.2f} % under-allocated, "
                             f"{safer['total over-allocation %']:.1f} % total over-allocation, business "
                             f"score {safer['business score']:.1f}.")
                else:
                    warn += " No exported variant or model of this run fails fewer jobs than that."
                lines += [":::{attention}", warn, ":::", ""]
    lines += ["## The headline table", "", markdown_table(table, {"under-allocated jobs %": 2}), ""]
    if (table["role"] == "exported variant").any():
        lines += ["The exported variants are points of the frontiers between failed jobs and wasted "
                  "memory (the quantile ensemble's and the cost-aware model's, see {doc}`04_evaluation`); "
                  "the simulation replays them.", ""]
    lines += ["The details: {doc}`04_evaluation` (every family, its interval and allocation "
              "categories) and {doc}`05_simulation` (the replay, job by job).", ""]
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame, digits: dict[str, int] | int = 1,
                   code_columns: tuple[str, ...] = ("model",)) -> str:
    """``frame`` as a Markdown table: ``digits`` decimals per column (or for all; 1 by default),
    numeric columns right-aligned, the values of ``code_columns`` as code, missing values empty."""
    places = {c: digits.get(c, 1) if isinstance(digits, dict) else digits for c in frame.columns}

    def cell(column: str, value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, str):
            return f"`{value}`" if column in code_columns else value
        return f"{value:.{places[column]}f}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---"
                          for c in frame.columns) + "|"
    body = ["| " + " | ".join(cell(c, v) for c, v in zip(frame.columns, row, strict=True)) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_glance_page(paths: ArtifactPaths, target: str | Path) -> Path:
    """Write :func:`glance_markdown` to ``target`` (e.g. ``book/results/glance.md``)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(glance_markdown(paths))
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m resource_prediction.glance [--artifacts-dir DIR] [--out FILE]``: write the page."""
    import argparse

    from resource_prediction.paths import DEFAULT_ARTIFACTS_DIR

    parser = argparse.ArgumentParser(description="Write the book's Results at a glance page.")
    parser.add_argument("--artifacts-dir", type=Path, default=DEFAULT_ARTIFACTS_DIR)
    parser.add_argument("--out", type=Path, default=Path("book") / "results" / GLANCE_PAGE)
    args = parser.parse_args(argv)
    print(f"results at a glance -> {write_glance_page(ArtifactPaths(args.artifacts_dir), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
