"""The scoring benchmark runs end to end on a small world and reports what it timed (not its speed)."""

from __future__ import annotations

from bench import bench_scoring


def test_scoring_benchmark_runs_and_reports_every_figure(monkeypatch, tmp_path):
    monkeypatch.setenv("HOLDCAST_HOME", str(tmp_path))
    figures = bench_scoring.run(3000, 9000, seed=1, train_sample=3000)
    assert figures["orders"] == 3000
    assert figures["erp_writeback_rows"] == 3000
    # Every order reaching an at-risk band by the model is explained; hard-rule blocks may add more.
    assert 0 < figures["explained"] <= 3000 and 0 < figures["at_risk"] < 3000
    parts = figures["features_s"] + figures["model_s"] + figures["decisions_s"] + figures["parquet_write_s"]
    assert 0 < parts <= figures["end_to_end_s"]
    assert (
        figures["ratio_vs_bare_all_targets"]
        == figures["end_to_end_s"] / figures["bare_predict_all_targets_s"]
    )
    text = bench_scoring.report(figures)
    assert "3,000 orders" in text and "19% of orders held" in text and "every booster" in text
