"""benchmarks/budget_pipeline.py end to end on tiny data: base training, two self-training rounds, the
evaluations and the timed summary (the script issue 8's budget numbers come from)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "budget_pipeline.py"


def test_budget_pipeline_runs_base_and_rounds_and_writes_a_timed_summary(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    cmd = [sys.executable, str(SCRIPT), "--data", str(data), "--out", str(out), "--train-samples", "16",
           "--base-steps", "4", "--rounds", "2", "--label", "4", "--workers", "1", "--iters", "2",
           "--steps", "2", "--pull-rounds", "1", "--base-eval-every", "4", "--ft-eval-every", "2",
           "--json", str(out / "result.json"), "optim.batch_size=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((out / "result.json").read_text())
    assert list(res["models"]) == ["base", "round1", "round2"]
    ready = [m["ready_minutes"] for m in res["models"].values()]
    assert all(0 < a < b for a, b in zip(ready, ready[1:]))  # each round's checkpoint written after the last
    for name, m in res["models"].items():
        net = m["model"]
        assert m["num_samples"] == 200 and np.isfinite([net["mpjpe"], net["p_mpjpe"], net["wrist"]]).all(), name
        assert 0.0 <= net["flip_share"] <= 1.0
    assert res["oracle_yaw_mean_pose"]["mpjpe"] > 0 and np.isfinite(res["selection_off"]["mpjpe"])
    assert set(res["times_minutes"]) == {"base", "selftrain"}
    assert res["budget_minutes"] == 60 and res["budget_model"] == "round2"  # seconds each: all inside the budget
    # each round labelled 4 samples with the previous model and fine-tuned from it
    for r in (1, 2):
        with np.load(out / "st" / f"round{r}" / "pseudo.npz") as z:
            assert z["pred"].shape == (4, 18, 3) and np.isfinite(z["pred"]).all()
        assert (out / "st" / f"round{r}" / "checkpoint.pt").is_file()
    assert "round2" in proc.stdout and "ready min" in proc.stdout


def test_budget_pipeline_rejects_a_negative_round_count(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                           "--rounds", "-1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--rounds >= 0" in proc.stderr
