"""maskpose selftrain: pseudo-labels split over worker processes, the fine-tune towards them, resume, errors."""
import numpy as np
import pytest
import torch

from maskpose.data.folder import MaskPoseDataset
from maskpose.data.synthetic import generate_dataset
from maskpose.selftrain import label_samples, merge_pseudo, pseudo_label, self_train, self_train_rounds
from maskpose.train import build_model, load_model, predict_dataset, save_checkpoint

from test_train import tiny, tiny_cfg  # noqa: F401  (fixture)

FAST = dict(cycles=1, iters=5, dirs=8)


@pytest.fixture(scope="module")
def ckpt(tiny, tmp_path_factory):  # noqa: F811
    cfg = tiny_cfg(tiny, tmp_path_factory.mktemp("st") / "run")
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # an untrained but not degenerate head
        model.final.weight.normal_(0, 0.05)
    path = tmp_path_factory.mktemp("st_ckpt") / "model.pt"
    save_checkpoint(path, model, None, 0, cfg)
    return path


def test_workers_give_the_labels_of_one_process(tiny, ckpt, tmp_path):  # noqa: F811
    out = tmp_path / "p.npz"
    assert pseudo_label(ckpt, tiny / "train", out, num=6, workers=2, **FAST) == 6
    z = np.load(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each worker runs with
    try:
        ref = [label_samples(ckpt, tiny / "train", start=s, limit=3, **FAST) for s in (0, 3)]
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(z["ids"], np.concatenate([r["ids"] for r in ref]))
    np.testing.assert_allclose(z["pred"], np.concatenate([r["pred"] for r in ref]), atol=1e-4)
    assert z["pred"].shape == (6, 18, 3) and np.isfinite(z["pred"]).all()
    assert np.abs(z["pred"] - z["before"]).max() > 1.0  # the fit moved the network's answers (mm)
    # the slice of predict_dataset is the same as predicting everything and slicing
    model, cfg, _ = load_model(ckpt)
    full = predict_dataset(model, tiny / "train", cfg, torch.device("cpu"), limit=6)
    part = predict_dataset(model, tiny / "train", cfg, torch.device("cpu"), start=3, limit=6)
    assert part["num"] == 3
    np.testing.assert_allclose(part["joints3d"], full["joints3d"][3:], atol=1e-4)
    # an open, lazily read dataset gives the same answers as the folder path
    lazy = MaskPoseDataset(tiny / "train", preload=False)
    np.testing.assert_allclose(predict_dataset(model, lazy, cfg, torch.device("cpu"), start=3, limit=6)["joints3d"],
                               part["joints3d"], atol=1e-5)


def test_self_train_pulls_the_network_to_its_labels_and_resumes(tiny, ckpt, tmp_path):  # noqa: F811
    ov = ["optim.batch_size=6", "optim.warmup=0", "log.ckpt_every=10"]
    kw = dict(label=0, workers=1, steps=30, lr=2e-3, progress=lambda m: None, **FAST)
    summary = self_train(ckpt, tmp_path / "st", overrides=ov + ["loss.pseudo=10"], **kw)
    assert summary["step"] == 30 and summary["labelled"] == 24 and (tmp_path / "st" / "checkpoint.pt").is_file()
    assert summary["pseudo_weight"] == 10.0
    # the control: the same fine-tune with the pull to the labels switched off
    assert self_train(ckpt, tmp_path / "control", overrides=ov + ["loss.pseudo=0"], **kw)["pseudo_weight"] == 0.0
    labels = np.load(tmp_path / "st" / "pseudo.npz")["pred"]

    def gap(path):
        model, cfg, _ = load_model(path)
        pred = predict_dataset(model, tiny / "train", cfg, torch.device("cpu"))["joints3d"]
        rel = lambda x: x - x[:, :1]  # noqa: E731
        return np.linalg.norm(rel(pred) - rel(labels), axis=-1).mean()

    with_labels, control = gap(tmp_path / "st" / "checkpoint.pt"), gap(tmp_path / "control" / "checkpoint.pt")
    assert with_labels < 0.9 * control, (with_labels, control)
    # resume: the labels are reused (not recomputed) and the finished fine-tune is not run again
    msgs = []
    again = self_train(ckpt, tmp_path / "st", overrides=ov + ["loss.pseudo=10"], resume=True,
                       **{**kw, "progress": msgs.append})
    assert any("reusing 24 pseudo-labels" in m for m in msgs) and again["step"] == 30


def test_rounds_label_each_round_with_the_previous_model(tiny, ckpt, tmp_path):  # noqa: F811
    """self_train_rounds: round 2's labels start from round 1's network (its ``before`` is round 1's own
    answers), each round has its folder, and a resumed chain retrains nothing."""
    ov = ["optim.batch_size=4", "optim.warmup=0", "log.ckpt_every=10"]
    kw = dict(label=8, workers=1, steps=6, lr=2e-3, overrides=ov, **FAST)
    out = tmp_path / "chain"
    sums = self_train_rounds(ckpt, out, rounds=2, progress=lambda m: None, **kw)
    assert [s["round"] for s in sums] == [1, 2] and all(s["step"] == 6 for s in sums)
    assert sums[1]["checkpoint"] == str(out / "round2" / "checkpoint.pt")
    model, cfg, _ = load_model(out / "round1" / "checkpoint.pt")
    assert cfg.data.pseudo_share == 0.5  # the default share of labelled samples per batch
    own = predict_dataset(model, tiny / "train", cfg, torch.device("cpu"), limit=8)["joints3d"]
    z = np.load(out / "round2" / "pseudo.npz")
    np.testing.assert_allclose(z["before"], own, atol=1e-3)
    z1 = np.load(out / "round1" / "pseudo.npz")
    assert np.abs(z1["before"] - z["before"]).max() > 1e-3  # round 1 was labelled by the start model
    msgs = []
    again = self_train_rounds(ckpt, out, rounds=2, resume=True, progress=msgs.append, **kw)
    assert sum("reusing 8 pseudo-labels" in m for m in msgs) == 2 and [s["step"] for s in again] == [6, 6]
    with pytest.raises(ValueError, match="rounds"):
        self_train_rounds(ckpt, out, rounds=0, **kw)
    with pytest.raises(ValueError, match="share"):
        self_train(ckpt, out, share=1.5, **kw)


def test_window_labels_a_new_slice_each_round_and_trains_on_the_last_k(tiny, ckpt, tmp_path):  # noqa: F811
    """``window=2``: round 1 labels samples 0-3, round 2 samples 4-7 and trains on both slices, round 3
    relabels 0-3 with round 2's model and trains on those plus round 2's 4-7; the split is loaded once and
    each round's fine-tune sees its own label file (not the previous round's, still attached to it)."""
    import maskpose.train as mt

    loads = []

    class Counting(mt.TensorBatches):
        def __init__(self, *a, **k):
            loads.append(a[0])
            super().__init__(*a, **k)

    ov = ["optim.batch_size=4", "optim.warmup=0", "log.ckpt_every=10"]
    kw = dict(label=4, workers=1, steps=4, lr=2e-3, overrides=ov, **FAST)
    out = tmp_path / "win"
    orig = mt.TensorBatches
    mt.TensorBatches = Counting
    seen = []
    real_train = mt.train

    def spy(cfg, resume=False, evaluate_fn=None, data=None):
        summary = real_train(cfg, resume=resume, evaluate_fn=evaluate_fn, data=data)
        seen.append((cfg.data.pseudo, None if data is None else data.pseudo_valid.nonzero().flatten().tolist()))
        return summary

    mt.train = spy
    try:
        sums = self_train_rounds(ckpt, out, rounds=3, window=2, progress=lambda m: None, **kw)
    finally:
        mt.TensorBatches, mt.train = orig, real_train
    assert len(loads) == 1  # one load of the split for the three rounds
    ids = lambda f: sorted(np.load(f)["ids"].tolist())  # noqa: E731
    train_ids = MaskPoseDataset(tiny / "train", preload=False).ids
    assert ids(out / "round1" / "pseudo.npz") == sorted(train_ids[0:4])
    assert ids(out / "round2" / "pseudo.npz") == sorted(train_ids[4:8])
    assert ids(out / "round3" / "pseudo.npz") == sorted(train_ids[0:4])
    assert not (out / "round1" / "pseudo_train.npz").exists()
    assert ids(out / "round2" / "pseudo_train.npz") == sorted(train_ids[0:8])
    assert ids(out / "round3" / "pseudo_train.npz") == sorted(train_ids[0:8])
    assert [s["labelled"] for s in sums] == [4, 8, 8]
    assert [p for p, _ in seen] == [str(out / "round1" / "pseudo.npz"), str(out / "round2" / "pseudo_train.npz"),
                                    str(out / "round3" / "pseudo_train.npz")]
    assert [v for _, v in seen] == [list(range(4)), list(range(8)), list(range(8))]
    # round 3's labels of 0-3 are its own (newest wins), those of 4-7 round 2's
    z3, m3, z2 = (np.load(out / f) for f in ("round3/pseudo.npz", "round3/pseudo_train.npz", "round2/pseudo.npz"))
    by = {i: k for k, i in enumerate(m3["ids"])}
    np.testing.assert_array_equal(m3["pred"][[by[i] for i in z3["ids"]]], z3["pred"])
    np.testing.assert_array_equal(m3["pred"][[by[i] for i in z2["ids"]]], z2["pred"])
    with pytest.raises(ValueError, match="cannot read pseudo-labels from .*nope.npz"):
        merge_pseudo(tmp_path / "m.npz", out / "round3" / "pseudo.npz", [tmp_path / "nope.npz"])
    with pytest.raises(ValueError, match="window"):
        self_train_rounds(ckpt, out, rounds=2, window=0, **kw)
    with pytest.raises(ValueError, match="cannot label from sample 100"):
        self_train(ckpt, tmp_path / "far", start=100, **kw)


def test_rounds_stop_when_the_next_one_would_pass_the_budget(tiny, ckpt, tmp_path, monkeypatch):  # noqa: F811
    """max_minutes: a round is not started when the time spent plus the last round's duration would pass the
    budget; the first always runs, 0 runs them all (a fake clock: each round 'takes' the given minutes)."""
    import time

    import maskpose.selftrain as st

    clock = [1000.0]
    minutes = {1: 10.0, 2: 12.0, 3: 8.0, 4: 8.0}
    monkeypatch.setattr(time, "time", lambda: clock[0])

    def fake_round(checkpoint, dest, progress=None, **kw):
        r = int(dest.name[-1])
        clock[0] += 60 * minutes[r]
        return {"checkpoint": str(dest / "checkpoint.pt"), "from": str(checkpoint)}

    monkeypatch.setattr(st, "self_train", fake_round)
    msgs = []
    run = lambda budget: self_train_rounds(ckpt, tmp_path / "b", rounds=4, max_minutes=budget,  # noqa: E731
                                           progress=msgs.append)
    assert [s["round"] for s in run(0)] == [1, 2, 3, 4]
    # after round 2: 22 spent + 12 (round 2's duration) = 34 > 33: stop; with 34 round 3 runs (30 spent), then
    # 30 + 8 = 38 > 34: stop
    assert [s["round"] for s in run(33)] == [1, 2]
    assert any("stopping after round 2: 22.0 of 33 minutes" in m for m in msgs)
    sums = run(34)
    assert [s["round"] for s in sums] == [1, 2, 3] and sums[2]["from"] == str(tmp_path / "b" / "round2" / "checkpoint.pt")
    assert [s["round"] for s in run(1)] == [1]  # the first round always runs
    with pytest.raises(ValueError, match="max_minutes >= 0"):
        run(-1)


def test_selftrain_cli_errors(tiny, ckpt, tmp_path):  # noqa: F811
    from typer.testing import CliRunner

    from maskpose.cli import app

    generate_dataset(tmp_path / "sv", 4, num_views=1, size=32, seed=5, split="train", workers=1)
    r = CliRunner().invoke(app, ["selftrain", str(ckpt), "--out", str(tmp_path / "o"), "--data", str(tmp_path / "sv")])
    assert r.exit_code == 1 and "multi-view" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["selftrain", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "does not exist" in r.output
    r = CliRunner().invoke(app, ["selftrain", str(ckpt), "--out", str(tmp_path / "o"), "--label", "2", "--workers", "1",
                                 "--iters", "2", "--search-cycles", "1", "--steps", "2", "optim.lrr=1"])
    assert r.exit_code == 1 and "optim.lrr" in r.output
    r = CliRunner().invoke(app, ["selftrain", str(ckpt), "--out", str(tmp_path / "o"), "--label", "4,x"])
    assert r.exit_code == 1 and "comma-separated counts" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["selftrain", str(ckpt), "--out", str(tmp_path / "o"), "--label", "4,4", "--rounds", "3"])
    assert r.exit_code == 1 and "one per round (3)" in r.output


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_label_workers_end_when_their_parent_is_killed(tmp_path):
    """A killed ``selftrain`` (kill -9, a scheduler's limit) must not leave its label workers running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing as mp, os, sys, time\n"
        "from maskpose.selftrain import _die_with_parent\n"
        "def who(_):\n"
        "    time.sleep(0.2)\n"
        "    return os.getpid()\n"
        "if __name__ == '__main__':\n"
        "    pool = mp.get_context('spawn').Pool(2, initializer=_die_with_parent)\n"
        "    seen = set()\n"
        "    while len(seen) < 2:\n"  # both workers are up: their initializer has run
        "        seen |= set(pool.map(who, range(2), chunksize=1))\n"
        "    rs = [pool.apply_async(time.sleep, (120,)) for _ in range(2)]\n"
        "    print(' '.join(str(p.pid) for p in pool._pool), flush=True)\n"
        "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2

        def alive(pid):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
            except FileNotFoundError:
                return False

        assert all(alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 20
        while time.time() < deadline and any(alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(alive(p) for p in pids), ("label workers outlived their killed parent",
                                                 [open(f"/proc/{p}/stat").read() for p in pids if alive(p)])
    finally:
        parent.kill()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_worker_whose_parent_died_before_its_initializer_ends():
    """The race seen in session 13: the parent is killed while its pool starts, a worker is re-parented
    before it asks for PR_SET_PDEATHSIG and would never get the signal; it must end at once instead."""
    import os
    import subprocess
    import sys

    code = ("from maskpose.selftrain import _die_with_parent\n"
            "_die_with_parent({parent})\n"
            "print('alive', flush=True)\n")
    gone = subprocess.run([sys.executable, "-c", code.format(parent=os.getpid() + 10 ** 6)],
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 1 and "alive" not in gone.stdout
    kept = subprocess.run([sys.executable, "-c", code.format(parent=os.getpid())],
                          capture_output=True, text=True, timeout=60)
    assert kept.returncode == 0 and "alive" in kept.stdout
