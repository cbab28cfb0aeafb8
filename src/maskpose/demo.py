"""``maskpose demo``: synth -> train (short) -> eval -> printed table + HTML report, on the embedded default.

Leaves ``OUT/checkpoint.pt``, ``OUT/eval.json``, ``OUT/predictions.npz``, ``OUT/train/`` and
``OUT/test/`` (dataset folders). Sized to finish in under 10 minutes on a 2-core CPU.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

from importlib import resources


def default_config_path() -> Path:
    return Path(str(resources.files("maskpose") / "configs" / "synthetic.yaml"))


def run_demo(out: str | Path = "demo_out", train_samples: int = 1500, test_samples: int = 200,
             minutes: float = 7.5, size: int = 64, views: int = 4, seed: int = 0, device: str = "auto",
             overrides: tuple[str, ...] = ()) -> dict:
    from .config import load_yaml
    from .data.synthetic import generate_dataset
    from .evaluate import evaluate_model, format_table, write_outputs
    from .train import TrainConfig, resolve_device, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for split, n in (("train", train_samples), ("test", test_samples)):
        d = out / split
        if _complete(d, n, views, size):
            print(f"[demo] reusing {d}")
            continue
        if d.exists():
            shutil.rmtree(d)
        print(f"[demo] generating {n} {split} samples ({views} views, {size} px) -> {d}")
        generate_dataset(d, num_samples=n, num_views=views, size=size, seed=seed, split=split)
    t_data = time.time() - t0
    cfg = load_yaml(TrainConfig, default_config_path(), list(overrides))
    cfg = replace(cfg, device=device,
                  data=replace(cfg.data, train=str(out / "train"), test=str(out / "test")),
                  optim=replace(cfg.optim, max_minutes=minutes),
                  log=replace(cfg.log, out=str(out / "run")))
    from .train import TensorBatches, measure_rate
    data = TensorBatches(cfg.data.train, cfg.model.input)
    rate = measure_rate(cfg, data)
    cfg = replace(cfg, optim=replace(cfg.optim, steps=max(100, int(rate * minutes * 60 * 0.93))))
    print(f"[demo] {rate:.1f} it/s measured: training for up to {minutes:.1f} min ({cfg.optim.steps} steps, cosine schedule)")
    summary = train(cfg, data=data)
    ckpt = out / "checkpoint.pt"
    shutil.copyfile(summary["checkpoint"], ckpt)
    from .train import load_model
    model, cfg2, _ = load_model(ckpt, resolve_device(device))
    table = evaluate_model(model, cfg2, out / "test", resolve_device(device))
    table["train_minutes"] = summary["minutes"]
    table["train_steps"] = summary["step"]
    table["data_seconds"] = t_data
    write_outputs(table, out / "eval.json", out / "predictions.npz")
    print(format_table(table))
    outputs = "checkpoint.pt, eval.json, predictions.npz"
    try:  # the HTML report reuses eval.json / predictions.npz (needs matplotlib: the viz extra)
        from .report import write_report
        write_report(out, out / "report.html")
        outputs += ", report.html"
    except ImportError as e:
        print(f"[demo] no HTML report ({e}); pip install 'maskpose[viz]'")
    print(f"[demo] data {t_data:.0f} s, training {summary['minutes']:.1f} min ({summary['step']} steps), "
          f"total {(time.time() - t0) / 60:.1f} min; outputs in {out}/ ({outputs})")
    return table


def _complete(d: Path, n: int, views: int, size: int) -> bool:
    try:
        from .data.folder import load_dataset_meta
        meta = load_dataset_meta(d)
    except Exception:
        return False
    return meta.get("num_samples") == n and meta.get("num_views") == views and meta.get("size") == size
