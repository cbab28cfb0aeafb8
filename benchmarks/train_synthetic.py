"""Train on synthetic multi-view data for a wall-clock budget and print the metrics over time.

    python benchmarks/train_synthetic.py --minutes 30 --json docs/results/train_30min.json [overrides...]

Fixed seeds, 64 px, 4 views (defaults); data are generated once into --data (train and test splits
from disjoint seed streams) and reused. Prints, at every evaluation, strict and flip-aware MPJPE /
P-MPJPE, the flip share, the ambiguity ratio (raw per-view labels and after matching), the wrist
error, and at the end the full table beside the two label-using baselines (training mean pose,
oracle-yaw mean pose), per joint and per activity. Extra arguments are config overrides, e.g.
``schedule.arms_from=1000 loss.extremity=0``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from maskpose.config import apply_overrides, load_yaml
from maskpose.data.folder import load_dataset_meta
from maskpose.demo import default_config_path
from maskpose.evaluate import evaluate_model, format_table, write_outputs
from maskpose.train import TensorBatches, TrainConfig, load_model, measure_rate, resolve_device, train


def ensure_data(root: Path, split: str, n: int, views: int, size: int, seed: int) -> Path:
    from maskpose.data.synthetic import generate_dataset

    d = root / split
    try:
        meta = load_dataset_meta(d)
        if meta["num_samples"] == n and meta["num_views"] == views and meta["size"] == size:
            return d
    except Exception:
        pass
    t0 = time.time()
    generate_dataset(d, n, num_views=views, size=size, seed=seed, split=split, overwrite=True)
    print(f"generated {n} {split} samples in {time.time() - t0:.0f} s -> {d}", flush=True)
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--train-samples", type=int, default=12000)
    ap.add_argument("--test-samples", type=int, default=200)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=Path("/tmp/maskpose_bench"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench"))
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (same overrides)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    tr = ensure_data(args.data, "train", args.train_samples, args.views, args.size, args.seed)
    te = ensure_data(args.data, "test", args.test_samples, args.views, args.size, args.seed)
    cfg = load_yaml(TrainConfig, default_config_path())
    cfg = replace(cfg, seed=args.seed, device=args.device,
                  data=replace(cfg.data, train=str(tr), test=str(te), eval_samples=0),
                  optim=replace(cfg.optim, max_minutes=args.minutes, steps=10 ** 7 if cfg.optim.steps < 10 ** 7 else cfg.optim.steps),
                  log=replace(cfg.log, out=str(args.out), eval_every=args.eval_every, progress=False))
    # a budget in minutes: the cosine schedule is set for the steps the budget allows (measured rate
    # below), unless optim.steps is overridden explicitly
    if args.overrides:
        cfg = apply_overrides(cfg, args.overrides)
    data = TensorBatches(cfg.data.train, cfg.model.input)
    if not any(o.startswith("optim.steps=") for o in args.overrides):
        rate = measure_rate(cfg, data)
        cfg = replace(cfg, optim=replace(cfg.optim, steps=max(100, int(rate * args.minutes * 60 * 0.93))))
        print(f"measured {rate:.2f} it/s -> cosine schedule over {cfg.optim.steps} steps", flush=True)
    dev = resolve_device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {dev}")
    summary = train(cfg, resume=args.resume, data=data)
    hist = [h for h in summary["history"] if h.get("step", -1) >= 0]
    cols = ("step", "minutes", "mpjpe", "p_mpjpe", "mpjpe_flip", "p_mpjpe_flip", "flip_share", "ambiguity_ratio",
            "ambiguity_ratio_raw", "wrist")
    print("\n" + " ".join(f"{c:>10}" for c in cols))
    for h in hist:
        print(" ".join(f"{h.get(c, float('nan')):>10.3f}" if c in ("flip_share", "ambiguity_ratio", "ambiguity_ratio_raw")
                       else f"{h.get(c, float('nan')):>10.1f}" for c in cols))
    model, cfg2, _ = load_model(summary["checkpoint"], dev)
    table = evaluate_model(model, cfg2, te, dev)
    # the same network with the anatomical selection switched off (ambiguity / flip share "off" rows)
    off = evaluate_model(model, replace(cfg2, method=replace(cfg2.method, selection=False)), te, dev)
    table["selection_off"] = {k: off["model"][k] for k in ("mpjpe", "p_mpjpe", "flip_share", "ambiguity_ratio",
                                                          "ambiguity_ratio_raw") if k in off["model"]}
    print()
    print(format_table(table))
    print("selection off:", {k: round(v, 3) for k, v in table["selection_off"].items()})
    if args.json:
        table["history"] = hist
        table["config"] = cfg.__class__.__name__
        table["overrides"] = args.overrides
        table["machine"] = platform.platform()
        write_outputs(table, str(args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
