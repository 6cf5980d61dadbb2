"""The trained-style deviation benchmark of issue 14 runs and reports every setting (tiny run, no timing)."""

from experiments import style_interval_deviation


def test_deviation_benchmark_reports_every_setting(tmp_path):
    module = style_interval_deviation
    out = tmp_path / "deviation.md"
    rows = module.main(["--seeds", "1", "--steps", "6", "--train-steps", "2", "--out", str(out)])
    assert [label for label, _, _ in rows] == list(module.SETTINGS)
    full = rows[0]
    assert full[1] == 0.0 and abs(full[2] - 1.0) < 1e-6, f"full guidance against itself: {full}"
    assert all(deviation > 0 for _, deviation, _ in rows[1:]), rows  # 6 steps: every shortcut reuses a delta
    assert out.read_text().count("\n| ") == len(rows) + 1
