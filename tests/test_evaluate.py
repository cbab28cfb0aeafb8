import json

import numpy as np
import torch

from maskpose import metrics as M
from maskpose.evaluate import baselines, evaluate_model, format_table, write_outputs
from maskpose.skeleton import H36M18
from maskpose.train import TrainConfig, build_model

from test_multiview import standing_pose
from test_train import tiny, tiny_cfg  # noqa: F401  (fixture)


def test_oracle_yaw_baseline_recovers_a_turned_pose():
    train = torch.stack([standing_pose(0.0, arms_out=0.4)]).numpy()
    test = torch.stack([standing_pose(y, arms_out=0.4) + torch.tensor([300.0, -200.0, 0.0], dtype=torch.float64)
                        for y in (0.7, 2.5, 4.0)]).numpy()
    b = baselines(train, test, H36M18)
    assert M.mpjpe(b["oracle_yaw_mean_pose"], test) < 1e-6
    assert M.mpjpe(b["mean_pose"], test) > 100  # the mean pose does not know the facing


def test_evaluate_model_table_and_outputs(tiny, tmp_path):  # noqa: F811
    cfg = tiny_cfg(tiny, tmp_path / "run")
    model = build_model(cfg)
    table = evaluate_model(model, cfg, tiny / "test", torch.device("cpu"))
    for col in ("model", "mean_pose", "oracle_yaw_mean_pose"):
        for k in ("mpjpe", "mpjpe_flip", "p_mpjpe", "p_mpjpe_flip", "pck", "auc", "flip_share"):
            assert np.isfinite(table[col][k])
    assert 0 <= table["model"]["ambiguity_ratio"] <= 0.5 and "per_activity" in table["model"]
    text = format_table(table)
    assert "P-MPJPE strict" in text and "oracle_yaw_mean_pose" in text
    write_outputs(table, str(tmp_path / "e.json"), str(tmp_path / "p.npz"))
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["model"]["mpjpe"] == table["model"]["mpjpe"]
    z = np.load(tmp_path / "p.npz")
    assert z["pred"].shape == z["gt"].shape == (8, 18, 3) and len(z["ids"]) == 8
    np.testing.assert_allclose(M.mpjpe(z["pred"], z["gt"]), table["model"]["mpjpe"])


def test_cli_errors_are_one_line(tiny, tmp_path):  # noqa: F811
    from typer.testing import CliRunner

    from maskpose.cli import app

    r = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.pt"), str(tiny / "test")])
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.pt"), str(tmp_path / "nodata")])
    assert r.exit_code == 1 and "nodata" in r.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lrr: 1\n")
    r = CliRunner().invoke(app, ["train", str(cfg)])
    assert r.exit_code == 1 and "optim.lrr" in r.output
