"""Which model to deploy, and why: the advice of the evaluation, in words, from the holdout table.

Notebook 04 displays :func:`deployment_advice` as Markdown; the evaluation logs
:func:`baseline_beating_champion` when it finds one.
"""

from __future__ import annotations

import pandas as pd

from resource_prediction.training.pareto import VARIANTS
from resource_prediction.training.search import SEARCH_TASK_TYPES

__all__ = ["baseline_beating_champion", "deployment_advice"]


def _scored(holdout: pd.DataFrame, task_types) -> pd.DataFrame:
    rows = holdout[holdout["task_type"].isin(task_types) & holdout["business_score"].notna()]
    return rows.sort_values("business_score", kind="stable")


def baseline_beating_champion(holdout: pd.DataFrame, champion: str | None) -> pd.Series | None:
    """The best baseline row when it scores lower than ``champion`` on the holdout, else ``None``."""
    baselines = _scored(holdout, ("baseline",))
    if champion is None or baselines.empty:
        return None
    best = holdout.set_index("family").loc[champion, "business_score"]
    top = baselines.iloc[0]
    return top if top["business_score"] < best else None


def _runner_up(models: pd.DataFrame, best: pd.Series, champion: str) -> str:
    runner = models[models["family"] != champion].iloc[0]
    verdict = (
        "overlap, so on this holdout the two are not clearly different; prefer the simpler or "
        "faster one if that matters."
        if runner["ci_low"] <= best["ci_high"]
        else "do not overlap: the champion is clearly better."
    )
    return (
        f"The runner-up is `{runner['family']}` at {runner['business_score']:.1f} "
        f"({runner['ci_low']:.1f} to {runner['ci_high']:.1f}): the intervals {verdict}"
    )


def _against_today(today: pd.Series, best: pd.Series) -> str:
    wasted = today["mean_gb_wasted"]
    saved = 1 - best["mean_gb_wasted"] / wasted if wasted > 0 else float("nan")
    return (
        f"Against today's configured request ({today['business_score']:.1f}: "
        f"{today['under_pct']:.2f} % under, {today['total_over_pct']:.1f} % over) it changes the "
        f"score by {best['business_score'] - today['business_score']:+.1f} points and the memory "
        f"wasted per job by {-100 * saved:+.0f} %."
    )


def _pareto_variants(pareto: pd.DataFrame) -> str | None:
    labels = pareto["variant"].fillna("").astype(str)
    rows = {name: pareto[labels.str.contains(name)] for name in VARIANTS}
    if any(r.empty for r in rows.values()):
        return None
    tiny, waste, balanced = (rows[n].iloc[0] for n in
                             ("qe_tiny_under_alloc", "qe_small_waste", "qe_balanced"))
    return (
        "If a failed job costs more than the penalty says, deploy the quantile ensemble's "
        f"*tiny under allocation* variant ({tiny['holdout_under_pct']:.2f} % under, "
        f"{tiny['holdout_total_over_pct']:.0f} % over on the holdout); if memory is scarcer, the "
        f"*small waste* one ({waste['holdout_under_pct']:.2f} % under, "
        f"{waste['holdout_total_over_pct']:.0f} % over). The balanced variant scores "
        f"{balanced['holdout_business_score']:.1f}."
    )


def deployment_advice(
    holdout: pd.DataFrame, champion: str | None, pareto: pd.DataFrame | None = None
) -> str:
    """Markdown paragraphs: the champion and its figures, the runner-up, today's request, a
    baseline that beats the champion, the oracle's distance, and the Pareto variants.

    ``holdout`` is :attr:`~resource_prediction.training.evaluation.EvaluationResult.holdout`.
    """
    models = _scored(holdout, SEARCH_TASK_TYPES)
    if champion is None or models.empty:
        return "No model family could be evaluated: nothing to deploy yet."
    rows = holdout.set_index("family")
    best = rows.loc[champion]
    text = [
        f"**Deploy `{champion}`** ({best['task_type']}): holdout business score "
        f"**{best['business_score']:.1f}** (95 % interval {best['ci_low']:.1f} to "
        f"{best['ci_high']:.1f}), {best['under_pct']:.2f} % of the jobs under-allocated and "
        f"{best['total_over_pct']:.1f} % total over-allocation, {best['mean_gb_wasted']:.1f} GB "
        "wasted per job."
    ]
    if len(models) > 1:
        text.append(_runner_up(models, best, champion))
    if "configured_request" in rows.index and pd.notna(rows.loc["configured_request", "business_score"]):
        text.append(_against_today(rows.loc["configured_request"], best))
    beaten_by = baseline_beating_champion(holdout, champion)
    if beaten_by is not None:
        text.append(
            f"**A baseline beats every model here:** `{beaten_by['family']}` scores "
            f"{beaten_by['business_score']:.1f} against the champion's {best['business_score']:.1f}. "
            "Keep the baseline, or search longer and on more data, before deploying a model."
        )
    if "oracle" in rows.index:
        limit = rows.loc["oracle", "business_score"]
        text.append(
            f"The oracle scores {limit:.1f}: the champion is {best['business_score'] - limit:.1f} "
            "points above the best any model can expect on these jobs."
        )
    if pareto is not None and (variants := _pareto_variants(pareto)):
        text.append(variants)
    return "\n\n".join(text)
