"""Training loop: learning on tiny data, labels never reach training, checkpoints and resume, DDP."""
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpose import metrics as M
from maskpose.config import ConfigError
from maskpose.data.folder import MaskPoseDataset
from maskpose.data.synthetic import generate_dataset
from maskpose.train import (TensorBatches, TrainConfig, build_model, compute_losses, load_checkpoint, load_model,
                            predict_dataset, train)
from maskpose.skeleton import H36M18


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(root / "train", 24, num_views=4, size=32, seed=3, split="train", workers=1)
    generate_dataset(root / "test", 8, num_views=4, size=32, seed=3, split="test", workers=1)
    return root


def tiny_cfg(root: Path, out: Path, **optim) -> TrainConfig:
    cfg = TrainConfig(device="cpu")
    o = dict(steps=40, batch_size=4, lr=2e-3, warmup=5)
    o.update(optim)
    return replace(cfg, data=replace(cfg.data, train=str(root / "train"), test=""),
                   model=replace(cfg.model, width=16, head_width=32),
                   optim=replace(cfg.optim, **o),
                   log=replace(cfg.log, out=str(out), tensorboard=False, progress=False, eval_every=0, ckpt_every=10))


def flip_aware_2d_error(pred2d: np.ndarray, gt2d: np.ndarray) -> float:
    """Mean per-view 2D joint error (normalised units), per view the better of the labelling and its mirror."""
    perm = H36M18.flip_permutation()
    e = np.linalg.norm(pred2d - gt2d, axis=-1).mean(-1)
    ef = np.linalg.norm(pred2d[..., perm, :] - gt2d, axis=-1).mean(-1)
    return float(np.minimum(e, ef).mean())


def test_loss_falls_and_pose_error_falls(tiny, tmp_path):
    """A few dozen steps on tiny data: the training loss falls and the 2D pose error of the
    per-view predictions falls below that of the untrained detector (GT read only here)."""
    from maskpose.data.folder import MaskPoseDataset

    root = tmp_path / "tiny64"
    generate_dataset(root / "train", 8, num_views=4, size=64, seed=5, split="train", workers=1)
    cfg = tiny_cfg(root, tmp_path / "run", steps=100, lr=1e-3, batch_size=8)
    torch.manual_seed(0)
    model0 = build_model(cfg)
    gt2d = MaskPoseDataset(root / "train", with_gt=True).gt_joints2d
    before = predict_dataset(model0, root / "train", cfg, torch.device("cpu"))
    data = TensorBatches(cfg.data.train, cfg.model.input)
    b = data.batch(torch.arange(len(data)), torch.device("cpu"))
    with torch.no_grad():
        loss0 = float(compute_losses(model0, b, cfg, H36M18, 10_000)[0])
    summary = train(cfg)
    model, _, _ = load_model(summary["checkpoint"])
    after = predict_dataset(model, root / "train", cfg, torch.device("cpu"))
    with torch.no_grad():
        loss1 = float(compute_losses(model, b, cfg, H36M18, 10_000)[0])
    assert loss1 < 0.9 * loss0, (loss0, loss1)
    e0 = flip_aware_2d_error(before["raw2d"], gt2d)
    e1 = flip_aware_2d_error(after["raw2d"], gt2d)
    assert e1 < 0.97 * e0, (e0, e1)


def test_ground_truth_never_reaches_training(tiny, tmp_path):
    """Poison the GT with NaN: one train step gives bit-identical weights."""
    poisoned = tmp_path / "poisoned"
    shutil.copytree(tiny / "train", poisoned)
    gt = np.load(poisoned / "gt" / "joints3d.npy")
    np.save(poisoned / "gt" / "joints3d.npy", np.full_like(gt, np.nan))
    data = TensorBatches(poisoned, "mask")
    assert not any("gt" in k for k in vars(data))
    outs = []
    for root in (tiny / "train", poisoned):
        cfg = tiny_cfg(root.parent if root.name == "train" else tmp_path, tmp_path / f"run_{root.name}", steps=2)
        cfg = replace(cfg, data=replace(cfg.data, train=str(root)))
        torch.manual_seed(0)
        s = train(cfg)
        outs.append(load_checkpoint(s["checkpoint"])["model"])
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k


def test_mask_only_training_never_reads_the_frames(tiny, tmp_path):
    """Input "mask": the frames are not read (a dataset without them trains the same); other inputs need them."""
    from maskpose.data.folder import DatasetError

    bare = tmp_path / "no_frames"
    shutil.copytree(tiny / "train", bare)
    shutil.rmtree(bare / "frames")
    full, nof = TensorBatches(tiny / "train", "mask"), TensorBatches(bare, "mask")
    assert full.images is None and nof.images is None
    idx = torch.arange(len(full))
    a, b = full.batch(idx, torch.device("cpu")), nof.batch(idx, torch.device("cpu"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(a["images"], a["masks"].expand(-1, -1, 3, -1, -1))
    rgb = TensorBatches(tiny / "train", "rgb_mask")
    assert rgb.images is not None and rgb.images.float().std() > 0
    with pytest.raises(DatasetError, match="frame file"):
        TensorBatches(bare, "rgb_mask")
    outs = []
    for root in (tiny / "train", bare):
        cfg = tiny_cfg(tiny, tmp_path / f"run_{root.name}", steps=2)
        cfg = replace(cfg, data=replace(cfg.data, train=str(root)))
        torch.manual_seed(0)
        outs.append(load_checkpoint(train(cfg)["checkpoint"])["model"])
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k


def test_resume_equals_uninterrupted(tiny, tmp_path):
    full = tiny_cfg(tiny, tmp_path / "full", steps=8)
    torch.manual_seed(0)
    train(full)
    part = tiny_cfg(tiny, tmp_path / "part", steps=4)
    torch.manual_seed(0)
    train(part)
    resumed = replace(part, optim=replace(part.optim, steps=8))
    s = train(resumed, resume=True)
    assert s["step"] == 8
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "part" / "checkpoint.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_killed_run_resumes_from_its_checkpoint(tiny, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "maskpose", "train", str(Path(__file__).parents[1] / "src/maskpose/configs/synthetic.yaml"),
            f"data.train={tiny / 'train'}", "data.test=", f"log.out={out}", "log.ckpt_every=2", "log.tensorboard=false",
            "log.progress=false", "optim.steps=10000", "optim.batch_size=2", "model.width=8", "model.head_width=16",
            "device=cpu"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    t0 = time.time()
    while not ckpt.exists() and time.time() - t0 < 120 and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), proc.stderr.read().decode()[-2000:]
    step = load_checkpoint(ckpt)["step"]
    assert step >= 2  # the visible checkpoint is always complete (a killed write leaves only a *.tmp file)
    r = subprocess.run(args[:-6] + ["optim.steps=" + str(step + 2), "optim.batch_size=2", "model.width=8",
                                    "model.head_width=16", "device=cpu", "--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {ckpt} at step {step}" in r.stdout + r.stderr
    assert load_checkpoint(ckpt)["step"] == step + 2
    assert not list(out.glob("*.tmp*"))  # partial temp files of the killed run are cleaned on resume


def test_checkpoint_of_another_joint_set_is_refused(tiny, tmp_path):
    cfg = tiny_cfg(tiny, tmp_path / "js", steps=1)
    s = train(cfg)
    with pytest.raises(ValueError, match="joint set 'h36m18'.*'h36m17'"):
        load_model(s["checkpoint"], joint_set="h36m17")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(bad)


def test_unwritable_output_dir_is_a_clear_error(tiny, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    cfg = tiny_cfg(tiny, f / "sub", steps=1)
    with pytest.raises((ConfigError, OSError)):
        train(cfg)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_ddp_two_cpu_processes(tiny, tmp_path):
    out = tmp_path / "ddp"
    cfg_path = Path(__file__).parents[1] / "src/maskpose/configs/synthetic.yaml"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "maskpose",
           "train", str(cfg_path), f"data.train={tiny / 'train'}", "data.test=", f"log.out={out}", "optim.steps=3",
           "optim.batch_size=2", "model.width=8", "model.head_width=16", "log.tensorboard=false", "log.progress=false",
           "device=cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3


@pytest.mark.parametrize("variant", [
    {"loss.preset": "paper"}, {"loss.preset": "gaussian_joints"}, {"method.triangulate": False},
    {"method.matching": False, "method.selection": False}, {"loss.physique": 1.0}, {"loss.geodesic": True},
    {"loss.extremity_mode": "view"}, {"loss.extremity_local_from": 0, "loss.extremity_radius_mm": 400.0},
    {"loss.rest": 0.1, "method.arm_matching": True}, {"loss.cover": 1.0}, {"loss.extremity_side_mm": 100.0},
    {"loss.girth": False, "loss.cover": 3.0},
    {"loss.cover": 1.0, "method.triangulate": False},
    {"loss.extremity_exclude_body_mm": 60.0, "loss.extremity_local_from": 0, "loss.hand_extend_local": 0.45},
    {"loss.extremity_exclude_ends": True, "loss.extremity_exclude_mm": 120.0},
    {"loss.search": 0.5, "loss.search_samples": 2, "loss.search_dirs": 8},
])
def test_every_ablation_switch_gives_a_finite_loss_with_gradients(tiny, variant):
    """Paper preset, Gaussian-joint baseline, single-view ("without Delta"), no matching/selection,
    the shape-prior network and geodesic weights: one step each, finite loss, gradients reach the detector."""
    from maskpose.config import apply_overrides
    from maskpose.models.shape_prior import ShapePriorNet

    cfg = apply_overrides(tiny_cfg(tiny, Path("/nonexistent"), steps=1), [f"{k}={v}" for k, v in variant.items()])
    model = build_model(cfg)
    spn = ShapePriorNet(channels=(8, 16)) if cfg.loss.physique > 0 else None
    data = TensorBatches(cfg.data.train, cfg.model.input)
    b = data.batch(torch.arange(3), torch.device("cpu"))
    total, terms, _ = compute_losses(model, b, cfg, H36M18, 10_000, spn)
    assert torch.isfinite(total) and "mask" in terms and "extremity" in terms
    if spn is not None:
        assert "physique" in terms
    assert ("cover" in terms) == (cfg.loss.cover > 0)
    assert ("search" in terms) == (cfg.loss.search > 0)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_init_from_a_checkpoint_fine_tunes_and_refuses_another_architecture(tiny, tmp_path):
    a = train(tiny_cfg(tiny, tmp_path / "a", steps=2))
    base = load_checkpoint(a["checkpoint"])["model"]
    cfg = replace(tiny_cfg(tiny, tmp_path / "b", steps=1, lr=1e-9, warmup=0), init=a["checkpoint"])
    b = train(cfg)
    tuned = load_checkpoint(b["checkpoint"])["model"]
    for k in base:  # one step at lr ~0: the weights are the initial checkpoint's, not a fresh init
        torch.testing.assert_close(tuned[k], base[k], rtol=1e-4, atol=1e-5)
    other = replace(cfg, model=replace(cfg.model, width=8), log=replace(cfg.log, out=str(tmp_path / "c")))
    with pytest.raises(ValueError, match="does not fit this model"):
        train(other)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_matches_the_cpu_step_and_its_checkpoint_loads_on_cpu(tiny, tmp_path):  # pragma: no cover
    """One step of the full loss on CUDA equals the CPU step (same weights and batch), and a short CUDA
    run (data held on the GPU) writes a checkpoint that predicts on the CPU."""
    cfg = replace(tiny_cfg(tiny, tmp_path / "cuda", steps=6), device="cuda")
    cfg = replace(cfg, loss=replace(cfg.loss, cover=1.0))
    data = TensorBatches(cfg.data.train, cfg.model.input)
    torch.manual_seed(0)
    model = build_model(cfg).double()
    b = {k: (v.double() if v.is_floating_point() else v) for k, v in data.batch(torch.arange(3), torch.device("cpu")).items()}
    total_cpu, terms_cpu, _ = compute_losses(model, b, cfg, H36M18, 10_000)
    gpu_model = model.cuda()
    bg = {k: v.cuda() for k, v in b.items()}
    total_gpu, terms_gpu, _ = compute_losses(gpu_model, bg, cfg, H36M18, 10_000)
    for k in terms_cpu:
        assert abs(float(terms_cpu[k]) - float(terms_gpu[k])) < 1e-6 * max(1.0, abs(float(terms_cpu[k]))), k
    res = train(cfg)
    ck = load_checkpoint(res["checkpoint"])
    assert ck["step"] == 6
    cpu_cfg = replace(cfg, device="cpu")
    m = build_model(cpu_cfg)
    m.load_state_dict(ck["model"])
    out = predict_dataset(m, tiny / "test", cpu_cfg, torch.device("cpu"))
    assert np.isfinite(out["joints3d"]).all()


def test_pseudo_labels_pull_the_prediction_and_bad_files_are_named(tiny, tmp_path):
    """Self-training (data.pseudo + loss.pseudo): the term is ~0 at the network's own answer and grows
    with the distance to the pseudo-labels, gradients reach the detector; samples without a label are
    left out; bad files give one clear error naming the file."""
    from maskpose.config import ConfigError

    cfg = tiny_cfg(tiny, tmp_path / "r", steps=1)
    cfg = replace(cfg, loss=replace(cfg.loss, pseudo=1.0))
    model = build_model(cfg)
    data = TensorBatches(cfg.data.train, cfg.model.input)
    ids = np.asarray(data.dataset.ids).astype(str)
    b = data.batch(torch.arange(4), torch.device("cpu"))
    with torch.no_grad():
        _, _, out = compute_losses(model, b, cfg, H36M18, 10_000)
    own = np.zeros((len(data), H36M18.num_joints, 3), dtype=np.float32)
    own[:4] = out["lifted"]["joints3d"].numpy()
    np.savez(tmp_path / "own.npz", pred=own, ids=ids)
    np.savez(tmp_path / "far.npz", pred=own + np.float32(150.0), ids=ids)
    terms = {}
    for name in ("own", "far"):
        data.load_pseudo(tmp_path / f"{name}.npz", H36M18.num_joints)
        b = data.batch(torch.arange(4), torch.device("cpu"))
        total, t, _ = compute_losses(model, b, cfg, H36M18, 10_000)
        terms[name] = float(t["pseudo"].detach())
    assert terms["own"] < 1e-4 and terms["far"] > 0.5, terms
    total.backward()
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0
    # only some ids known: the others are left out
    np.savez(tmp_path / "part.npz", pred=own[:3], ids=ids[:3])
    data.load_pseudo(tmp_path / "part.npz", H36M18.num_joints)
    assert int(data.pseudo_valid.sum()) == 3
    # bad files
    np.savez(tmp_path / "shape.npz", pred=own[:, :5], ids=ids)
    np.savez(tmp_path / "nan.npz", pred=own * np.nan, ids=ids)
    np.savez(tmp_path / "other.npz", pred=own, ids=np.asarray([f"x{i}" for i in range(len(ids))]))
    for f, msg in (("missing.npz", "cannot read"), ("shape.npz", "expected pred"), ("nan.npz", "NaN"),
                   ("other.npz", "none of its")):
        with pytest.raises(ConfigError, match=msg) as e:
            data.load_pseudo(tmp_path / f, H36M18.num_joints)
        assert f in str(e.value)
    with pytest.raises(ValueError, match="pseudo"):
        replace(cfg.loss, pseudo=-1.0).validate()
    with pytest.raises(ValueError, match="data.pseudo"):
        cfg.validate()  # loss.pseudo > 0 without data.pseudo


def test_pseudo_share_draws_that_part_of_each_batch_from_the_labelled_samples():
    """data.pseudo_share: the first round(share * B) indices come from the labelled samples, the rest
    uniformly from all; share 0 (or no labels) is the plain uniform draw; the draw depends only on the seed."""
    from maskpose.train import batch_indices

    labelled = torch.tensor([3, 7, 11])
    gen = torch.Generator()
    counts = torch.zeros(100)
    for step in range(500):
        gen.manual_seed(step)
        idx = batch_indices(gen, 100, 8, labelled, 0.5)
        assert idx.shape == (8,) and idx.dtype == torch.long
        assert set(idx[:4].tolist()) <= {3, 7, 11}
        counts += torch.bincount(idx, minlength=100)
    share = float(counts[labelled].sum() / counts.sum())
    assert 0.5 < share < 0.55, share  # 4 of 8 from the labels + 3 % of the uniform rest
    gen.manual_seed(1)
    a = batch_indices(gen, 100, 8)
    gen.manual_seed(1)
    assert torch.equal(a, batch_indices(gen, 100, 8, labelled, 0.0))
    gen.manual_seed(1)
    assert torch.equal(a, batch_indices(gen, 100, 8, torch.zeros(0, dtype=torch.long), 0.5))
    gen.manual_seed(1)
    assert set(batch_indices(gen, 100, 8, labelled, 1.0).tolist()) <= {3, 7, 11}
    cfg = TrainConfig()
    with pytest.raises(ValueError, match="pseudo_share"):
        replace(cfg, data=replace(cfg.data, pseudo="x.npz", pseudo_share=1.5)).validate()
    with pytest.raises(ValueError, match="data.pseudo_share > 0 needs data.pseudo"):
        replace(cfg, data=replace(cfg.data, pseudo_share=0.5)).validate()


def test_pseudo_no_pull_turns_the_hand_pull_off_only_on_labelled_samples(tiny, tmp_path):
    """loss.pseudo_no_pull: the extremity term ignores samples with a pseudo-label; with no sample labelled
    it is the plain term; with every sample labelled it is zero."""
    cfg = tiny_cfg(tiny, tmp_path / "r", steps=1)
    cfg = replace(cfg, loss=replace(cfg.loss, pseudo=1.0, extremity=1.0, extremity_decay_start=-1,
                                    extremity_exclude_body_from=0))
    model = build_model(cfg)
    data = TensorBatches(cfg.data.train, cfg.model.input)
    ids = np.asarray(data.dataset.ids).astype(str)
    pred = np.zeros((len(data), H36M18.num_joints, 3), dtype=np.float32)
    idx = torch.arange(8)

    def pull(labelled: list[int], no_pull: bool) -> float:
        np.savez(tmp_path / "p.npz", pred=pred[labelled], ids=ids[labelled])
        data.load_pseudo(tmp_path / "p.npz", H36M18.num_joints)
        c = replace(cfg, loss=replace(cfg.loss, pseudo_no_pull=no_pull))
        with torch.no_grad():
            _, t, _ = compute_losses(model, data.batch(idx, torch.device("cpu")), c, H36M18, 10_000)
        return float(t.get("extremity", torch.zeros(())))

    plain = pull([20], False)
    assert plain > 0
    assert pull([20], True) == pytest.approx(plain)  # sample 20 is not in the batch
    assert pull(list(range(8)), False) == pytest.approx(plain)
    assert pull(list(range(8)), True) == 0.0
    part = pull([0, 1, 2, 3], True)
    assert part != pytest.approx(plain)


def test_extremity_weight_fades_to_zero_and_the_default_schedule_ends_without_the_pull():
    """The hand pull is a training signal: the default schedule fades it out so that the loss it ends on is the
    mask + priors alone (whose minimum is near the truth, benchmarks/loss_at_gt.py)."""
    from maskpose.config import apply_overrides, load_yaml
    from maskpose.demo import default_config_path
    from maskpose.train import extremity_weight

    cfg = apply_overrides(TrainConfig(), ["loss.extremity=0.5", "loss.extremity_decay_start=100",
                                          "loss.extremity_decay_steps=50", "schedule.arms_from=10"])
    assert extremity_weight(5, cfg) == 0.0  # before the arms join
    assert extremity_weight(10, cfg) == 0.5 and extremity_weight(99, cfg) == 0.5
    assert extremity_weight(125, cfg) == pytest.approx(0.25)
    assert extremity_weight(150, cfg) == 0.0 and extremity_weight(10_000, cfg) == 0.0
    never = apply_overrides(cfg, ["loss.extremity_decay_start=-1"])
    assert extremity_weight(10_000, never) == 0.5
    shipped = load_yaml(TrainConfig, default_config_path())
    lc = shipped.loss
    assert lc.extremity > 0 and 0 <= lc.extremity_decay_start
    assert lc.extremity_decay_start + lc.extremity_decay_steps < shipped.optim.steps
    assert extremity_weight(shipped.optim.steps - 1, shipped) == 0.0


def test_flip_average_undoes_the_mirror_and_its_arbitrary_labels():
    """flip_average: a mirror answer that is the exact mirror (x negated, and the legs' and/or arms'
    labels swapped in any of the four ways) averages back to the answer itself; otherwise the mean."""
    from maskpose.multiview import arm_permutation
    from maskpose.train import flip_average

    js = H36M18
    g = torch.Generator().manual_seed(0)
    N, J = 4, js.num_joints
    out = {"joints2d": torch.rand(N, J, 2, generator=g) * 2 - 1, "depth": torch.rand(N, J, generator=g),
           "confidence": torch.rand(N, J, generator=g), "girth": torch.rand(N, generator=g), "extra": torch.zeros(N)}
    full, arms = js.flip_permutation(), arm_permutation(js)
    legs = [full[arms[j]] for j in range(J)]
    perms = [list(range(J)), full, arms, legs]
    mirror = {k: v.clone() for k, v in out.items()}
    for n in range(N):  # sample n's mirror labels its limbs by perms[n]
        p = perms[n]
        mirror["joints2d"][n] = out["joints2d"][n, p] * torch.tensor([-1.0, 1.0])
        mirror["depth"][n] = out["depth"][n, p]
        mirror["confidence"][n] = out["confidence"][n, p]
    res = flip_average(out, mirror, js)
    for k in ("joints2d", "depth", "confidence", "girth"):
        torch.testing.assert_close(res[k], out[k], atol=1e-6, rtol=0)
    assert "extra" in res
    # a mirror answer shifted by +0.1 in (mirrored) x: the average moves the original by -0.05
    shifted = dict(mirror, joints2d=mirror["joints2d"] + torch.tensor([0.1, 0.0]))
    res = flip_average(out, shifted, js)
    torch.testing.assert_close(res["joints2d"], out["joints2d"] - torch.tensor([0.05, 0.0]), atol=1e-6, rtol=0)


def test_flip_test_at_inference_only(tiny, tmp_path):  # noqa: F811
    """method.flip_test changes the answers in eval mode (the mirror is averaged in), not in training mode."""
    from maskpose.train import predict_views

    cfg = tiny_cfg(tiny, tmp_path)
    model = build_model(cfg)
    ds = MaskPoseDataset(tiny / "test", preload=False)
    items = [ds[i] for i in range(2)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("images", "masks", "crop_cameras", "valid")}
    flip_cfg = replace(cfg, method=replace(cfg.method, flip_test=True))
    model.eval()
    with torch.no_grad():
        a, b = predict_views(model, batch, cfg)["joints2d"], predict_views(model, batch, flip_cfg)["joints2d"]
        assert (a - b).abs().max() > 1e-4 and torch.isfinite(b).all()
        model.train()
        torch.testing.assert_close(predict_views(model, batch, flip_cfg)["joints2d"], predict_views(model, batch, cfg)["joints2d"])
