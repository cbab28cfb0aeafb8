"""Where a training step's time goes: data, network, lifting (matching + DLT + selection), render, total.

    python benchmarks/train_step_profile.py --data /tmp/maskpose_bench/train [--batch 8] [--threads 2]

Times are medians over repeated calls on this machine (named in the output), batch = samples x views.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from maskpose import losses as L
from maskpose.config import apply_overrides, load_yaml
from maskpose.demo import default_config_path
from maskpose.skeleton import get_joint_set
from maskpose.train import (TensorBatches, TrainConfig, build_model, compute_losses, lift_batch, predict_views,
                            resolve_device)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, n: int = 10) -> float:
    fn()
    _sync()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        _sync()
        ts.append(time.perf_counter() - t0)
    return 1000 * statistics.median(ts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. loss.cover=1")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_yaml(TrainConfig, default_config_path())
    if args.overrides:
        cfg = apply_overrides(cfg, args.overrides)
    js = get_joint_set(cfg.joint_set)
    data = TensorBatches(args.data, cfg.model.input)
    dev = resolve_device(args.device)
    model = build_model(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    idx = torch.arange(args.batch)
    b = data.batch(idx, dev)
    V = b["images"].shape[1]
    gpu = f", {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else ""
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {dev}{gpu}")
    print(f"batch: {args.batch} samples x {V} views at {data.size} px; {sum(p.numel() for p in model.parameters())} parameters\n")
    rows = {}
    rows["data (index cached tensors)"] = timed(lambda: data.batch(torch.randint(0, len(data), (args.batch,)), dev))
    rows["network forward"] = timed(lambda: predict_views(model, b, cfg))

    def net_fb():
        p = predict_views(model, b, cfg)
        (p["joints2d"].sum() + p["depth"].sum()).backward()
    rows["network forward + backward"] = timed(net_fb)
    with torch.no_grad():
        p = predict_views(model, b, cfg)
    rows["lift: matching + DLT + selection"] = timed(lambda: lift_batch(p, b, cfg, js))
    X = lift_batch(p, b, cfg, js)["joints3d"].detach().requires_grad_(True)

    def render_fb():
        m = L.render_body(X, b["crop_cameras"], js, data.size, cfg.loss)
        ((m - b["masks"]) ** 2).mean().backward()
    rows["body render + L2, forward + backward"] = timed(render_fb)

    def step():
        loss, _, _ = compute_losses(model, b, cfg, js, 10 ** 6)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows["full training step (all terms, optimiser)"] = timed(step)
    for k, v in rows.items():
        print(f"{k:<44}{v:>9.1f} ms")
    print(f"\n-> {1000 / rows['full training step (all terms, optimiser)']:.2f} it/s")


if __name__ == "__main__":
    main()
