"""maskpose report: a self-contained HTML page from a tiny real run; the TensorBoard reader; errors."""
import base64
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from maskpose.data.synthetic import generate_dataset
from maskpose.evaluate import evaluate_model, write_outputs
from maskpose.report import ReportError, find_run, read_tensorboard_scalars, write_report
from maskpose.train import TrainConfig, load_model, train

IMG_RE = re.compile(r'<img alt="([^"]*)"[^>]*src="data:image/png;base64,([^"]+)"')


def has_tensorboard() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """8 training + 4 test samples (2 views, 32 px); 10 steps (TensorBoard logs every 10) of a small
    detector with the shape prior on, evaluation at steps 5 and 10, TensorBoard on (when installed)."""
    root = tmp_path_factory.mktemp("rep")
    generate_dataset(root / "train", 8, num_views=2, size=32, seed=1, split="train", workers=1)
    generate_dataset(root / "test", 4, num_views=2, size=32, seed=1, split="test", workers=1)
    cfg = TrainConfig(device="cpu")
    cfg = replace(cfg, data=replace(cfg.data, train=str(root / "train"), test=str(root / "test"), eval_samples=0),
                  model=replace(cfg.model, width=8, head_width=16, depth_bins=8),
                  loss=replace(cfg.loss, physique=0.5),
                  schedule=replace(cfg.schedule, physique_ramp=2),
                  optim=replace(cfg.optim, steps=10, batch_size=2, warmup=2),
                  log=replace(cfg.log, out=str(root / "run"), tensorboard=True, progress=False, eval_every=5,
                              ckpt_every=0, image_every=0))
    torch.manual_seed(0)
    train(cfg)
    return root


def images(doc: str) -> dict:
    out = {}
    for alt, data in IMG_RE.findall(doc):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None, alt
        out.setdefault(alt, []).append(img)
    return out


def assert_self_contained(doc: str) -> None:
    assert "http://" not in doc and "https://" not in doc
    assert "<script" not in doc.lower() and "<link" not in doc.lower()
    srcs = re.findall(r'src="([^"]*)"', doc)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "href=" not in doc


def test_report_of_a_tiny_run(tiny_run, tmp_path):
    run = tiny_run / "run"
    out = write_report(run, tmp_path / "r.html", num_panels=1, tile=48)
    assert out == tmp_path / "r.html"
    doc = out.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")
    assert_self_contained(doc)
    # the metric table: rows and the numbers of an independent evaluation of the same checkpoint
    model, cfg, _ = load_model(run / "checkpoint.pt")
    tab = evaluate_model(model, cfg, tiny_run / "test", torch.device("cpu"))
    for label in ("MPJPE strict (mm)", "P-MPJPE flip-aware (mm)", "PCK@150 strict (%)", "flip share"):
        assert f"<td>{label}</td>" in doc
    row = re.search(r"<tr><td>MPJPE strict \(mm\)</td><td>([\d.]+)</td><td>([\d.]+)</td><td>([\d.]+)</td></tr>", doc)
    assert row is not None
    assert float(row.group(1)) == pytest.approx(tab["model"]["mpjpe"], abs=0.051)
    assert float(row.group(2)) == pytest.approx(tab["mean_pose"]["mpjpe"], abs=0.051)
    assert float(row.group(3)) == pytest.approx(tab["oracle_yaw_mean_pose"]["mpjpe"], abs=0.051)
    # config and history
    assert "physique: 0.5" in doc and "steps: 10" in doc
    assert re.search(r"<tr><td>10</td><td>[\d.]+</td><td>[\d.]+</td>", doc)  # evaluation history row at step 10
    imgs = images(doc)
    # per-joint bars: a 900-px-wide figure
    assert imgs["per-joint MPJPE"][0].shape[1] == 900
    assert "evaluation during training" in imgs
    if has_tensorboard():
        assert "loss curves" in imgs
    else:
        assert "Loss curves not available" in doc
    # panels: best and worst sample (1 each); 2 views x 5 tiles (physique column present) of 48 px
    panels = [im for alt, ims in imgs.items() if alt.startswith("sample ") for im in ims]
    assert len(panels) == 2
    for p in panels:
        assert p.shape[1] == 5 * 48 and p.shape[0] > 2 * 48
    assert len(imgs["3D pose"]) == 2
    assert "No physique-mask column" not in doc


def test_report_prefers_the_runs_eval_json(tiny_run, tmp_path):
    """A run directory with eval.json + predictions.npz (as `maskpose demo` leaves): the table comes from
    the JSON; the default output is RUN_DIR/report.html."""
    run = tmp_path / "demo_like"
    shutil.copytree(tiny_run / "run", run)
    model, cfg, _ = load_model(run / "checkpoint.pt")
    tab = evaluate_model(model, cfg, tiny_run / "test", torch.device("cpu"))
    tab["model"]["mpjpe"] = 4321.0  # a marker: only the JSON has this number
    write_outputs(tab, str(run / "eval.json"), str(run / "predictions.npz"))
    found = find_run(run)
    assert found.eval_json == run / "eval.json" and found.predictions == run / "predictions.npz"
    out = write_report(run, num_panels=1, tile=32)
    assert out == run / "report.html"
    doc = out.read_text()
    assert "<td>4321.0</td>" in doc and "from eval.json" in doc
    assert_self_contained(doc)


def test_report_without_ground_truth_ranks_by_mask_iou(tiny_run, tmp_path):
    nogt = tmp_path / "nogt"
    shutil.copytree(tiny_run / "test", nogt)
    shutil.rmtree(nogt / "gt")
    meta = json.loads((nogt / "meta.json").read_text())
    meta.pop("has_gt", None)
    (nogt / "meta.json").write_text(json.dumps(meta))
    run = tmp_path / "run_nogt"
    shutil.copytree(tiny_run / "run", run)
    shutil.rmtree(run / "tb", ignore_errors=True)
    out = write_report(run, tmp_path / "n.html", dataset=nogt, num_panels=1, tile=32)
    doc = out.read_text()
    assert "has no ground truth" in doc and "IoU of the rendered body with the mask" in doc
    assert "Metrics</h2><div class='note'>Not available" in doc
    assert "MPJPE strict (mm)" not in doc
    assert "Loss curves not available" in doc  # the copy has no tb/ folder
    assert len([a for a in images(doc) if a.startswith("sample ")]) == 2
    assert_self_contained(doc)


def test_not_a_run_directory(tmp_path):
    d = tmp_path / "just_a_folder"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    with pytest.raises(ReportError, match=r"just_a_folder is not a maskpose run directory.*checkpoint\.pt"):
        write_report(d)
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ReportError, match=r"bad is not a usable maskpose run directory"):
        write_report(bad)


@pytest.mark.skipif(not has_tensorboard(), reason="tensorboard not installed (writer side of the round trip)")
def test_tensorboard_reader_round_trip(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "tb"))
    w.add_text("note", "not a scalar", 0)
    for s in range(10, 60, 10):
        w.add_scalar("loss/mask", 0.5 / s, s)
        w.add_scalar("loss/new", 2.0 * s, s, new_style=True)  # tensor-style scalar
    w.close()
    files = sorted((tmp_path / "tb").glob("events.out.tfevents.*"))
    sc = read_tensorboard_scalars(files)
    steps, vals = sc["loss/mask"]
    assert steps.tolist() == [10, 20, 30, 40, 50]
    assert np.allclose(vals, np.float32(0.5 / steps), rtol=1e-6)
    assert np.allclose(sc["loss/new"][1], 2.0 * steps)
    assert "note" not in sc
    # a truncated tail (a run still writing: here the last record, loss/new at step 50) is ignored
    data = files[0].read_bytes()
    cut = tmp_path / "events.out.tfevents.cut"
    cut.write_bytes(data[:-7])
    sc2 = read_tensorboard_scalars(cut)
    assert len(sc2["loss/new"][0]) == 4 and sc2["loss/mask"][0].tolist() == steps.tolist()
