"""The book's *Allocation quality* page: read from the quality benchmark, nothing typed in."""

from __future__ import annotations

import json

import pytest

from resource_prediction.quality_page import (
    REFERENCE_BENCH,
    SECTIONS,
    family_ratio_table,
    quality_markdown,
    quality_table,
    write_quality_page,
)


@pytest.fixture(scope="module")
def reference() -> dict:
    if not REFERENCE_BENCH.is_file():
        pytest.skip("no benchmark of record in book/benchmarks/")
    return json.loads(REFERENCE_BENCH.read_text())


def test_table_holds_every_data_set_with_its_figures(reference):
    table = quality_table(reference).set_index("data")
    records = [r for section in SECTIONS for r in reference.get(section, [])]
    assert list(table.index) == [r["data"] for r in records]
    for record in records:
        row = table.loc[record["data"]]
        assert row["champion"] == record["champion"]
        assert row["champion score"] == pytest.approx(record["champion_score"])
        scores = {t["family"]: t["business_score"] for t in record["table"]}
        assert row["configured_request"] == pytest.approx(scores["configured_request"])
    ratios = family_ratio_table(reference)
    assert set(ratios.columns) == {r["data"] for r in reference["scenarios"]}
    assert "oracle" not in ratios.index
    assert ratios.mean(axis=1).is_monotonic_increasing


def test_page_states_the_figures_in_words(reference, tmp_path):
    page = write_quality_page(tmp_path / "quality.md", (tmp_path / "absent.json", REFERENCE_BENCH)).read_text()
    assert page.startswith("# Allocation quality")
    assert "book/benchmarks/quality.json" in page and str(tmp_path) not in page
    for record in reference["scenarios"]:
        assert f"| `{record['data']}` |" in page
        assert f"{record['champion_ratio_to_oracle']:.3f}" in page
    assert "scenarios the champion is within 1.15 x" in page
    if reference.get("traces_longer_holdout"):
        assert "traces scored on their latest 20-40 %" in page
    # one chart, drawn by the book's own plotly.js (no CDN, no copy of plotly.js in the page)
    assert page.count('class="plotly-graph-div"') == 1
    assert "cdn.plot.ly" not in page and "window.PlotlyConfig" not in page
    if reference.get("commit"):
        assert reference["commit"] in page


def test_a_newer_benchmark_is_preferred_and_a_missing_one_is_said(tmp_path):
    record = {"data": "default", "champion": "cost_aware_regression", "champion_score": 60.0,
              "champion_under_pct": 4.0, "oracle_score": 50.0, "champion_ratio_to_oracle": 1.2,
              "table": [{"family": "oracle", "business_score": 50.0, "ratio_to_oracle": 1.0},
                        {"family": "cost_aware_regression", "business_score": 60.0, "ratio_to_oracle": 1.2},
                        {"family": "configured_request", "business_score": 170.0, "ratio_to_oracle": 3.4}]}
    newer = tmp_path / "bench" / "quality.json"
    newer.parent.mkdir()
    newer.write_text(json.dumps({"commit": "abc1234", "scenarios": [record]}))
    page = write_quality_page(tmp_path / "quality.md", (newer, REFERENCE_BENCH)).read_text()
    assert "abc1234" in page and "1.200" in page and "On 0 of 1 scenarios" in page
    assert "expected x oracle" not in page  # a benchmark without expected costs: no such column
    record["champion_expected_ratio_to_oracle"] = 1.1
    newer.write_text(json.dumps({"commit": "abc1234", "scenarios": [record]}))
    page = write_quality_page(tmp_path / "quality.md", (newer, REFERENCE_BENCH)).read_text()
    assert "| expected x oracle |" in page and "1.100" in page
    assert "By expected cost" in page and "1 of 1 are within 1.15 x" in page
    assert "No quality benchmark" in quality_markdown(None)
    page = write_quality_page(tmp_path / "none.md", (tmp_path / "absent.json",)).read_text()
    assert "No quality benchmark was found" in page


def test_a_scenario_scored_on_more_seeds_is_summarised_over_all_of_them(tmp_path):
    def record(data, ratio, expected):
        return {"data": data, "champion": "cost_aware_regression", "champion_score": 50.0 * ratio,
                "champion_under_pct": 4.0, "oracle_score": 50.0, "champion_ratio_to_oracle": ratio,
                "champion_expected_ratio_to_oracle": expected,
                "table": [{"family": "oracle", "business_score": 50.0, "ratio_to_oracle": 1.0},
                          {"family": "cost_aware_regression", "business_score": 50.0 * ratio,
                           "ratio_to_oracle": ratio}]}

    results = {"scenarios": [record("little_data", 1.4, 1.3)],
               "scenario_seeds": [{**record(f"little_data_seed_{s}", r, e), "scenario": "little_data", "seed": s}
                                  for s, r, e in ((1, 1.1, 1.1), (2, 1.0, 1.2))]}
    page = quality_markdown(results)
    assert "Over 3 seeds of `little_data`" in page
    assert "the champion's score averages 1.167 x the oracle's (from 1.000 to 1.400; within 1.15 x on 2 of 3)" in page
    assert "; its expected cost averages 1.200 x the oracle's (from 1.100 to 1.300; within 1.15 x on 1 of 3)" in page
    assert "| `little_data_seed_2` |" in page
    # the scenario bar counts each scenario once, at its main seed
    assert "On 0 of 1 scenarios the champion is within 1.15 x" in page
