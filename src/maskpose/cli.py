"""The ``maskpose`` command line (Typer). Each command is a thin wrapper over a plain function."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=(
        "maskpose: learn 3D human pose from foreground masks alone.\n\n"
        "Pipeline: synth | prepare | import -> dataset folder -> train -> eval / predict / fit -> export.\n\n"
        "Not yet implemented (planned): prepare (own videos + calibration -> dataset folder), "
        "import (h36m | 3dhp | tiktok | mpii), predict (video -> 3D joints), export (json/csv/npz/trc/onnx), "
        "report (HTML)."
    ),
)


@app.callback()
def _main() -> None:
    """maskpose command line."""


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Output dataset folder (must be empty or absent unless --overwrite)."),
    samples: int = typer.Option(1000, "--samples", min=1, help="Number of samples (multi-view instants)."),
    views: int = typer.Option(4, "--views", min=1, help="Cameras per sample."),
    size: int = typer.Option(64, "--size", min=8, help="Crop size S in pixels."),
    seed: int = typer.Option(0, "--seed", help="Base seed; sample i is drawn from (seed, split, i)."),
    split: str = typer.Option("train", "--split", help="train | val | test (disjoint random streams)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes (default: all usable CPUs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
) -> None:
    """Generate a synthetic multi-view dataset (bodies, cameras, crops, masks, weights, GT in gt/)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .data.folder import DatasetError
    from .data.synthetic import generate_dataset

    if split not in ("train", "val", "test"):
        typer.echo(f"error: --split must be train, val or test, got {split!r}", err=True)
        raise typer.Exit(2)
    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn())
    tasks: list = []

    def on_progress(k: int) -> None:  # the bar starts with the first sample (after the folder checks)
        if not tasks:
            bar.start()
            tasks.append(bar.add_task(f"synth {split}", total=samples))
        bar.update(tasks[0], completed=k)

    try:
        res = generate_dataset(out, samples, num_views=views, size=size, seed=seed, split=split,
                               workers=workers, overwrite=overwrite, progress=on_progress)
    except DatasetError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    except OSError as e:  # e.g. the disk filled up while writing
        typer.echo(f"error: writing {out} failed: {e}", err=True)
        raise typer.Exit(1)
    finally:
        bar.stop()
    typer.echo(f"wrote {res['num_samples']} samples x {views} views ({size} px) to {res['path']} "
               f"in {res['seconds']:.1f} s ({res['samples_per_s']:.1f} samples/s)")


def _fail(msg: str, code: int = 1) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _user_errors():
    """Exceptions that are the user's input, reported as one line (no traceback)."""
    from .config import ConfigError
    from .data.folder import DatasetError

    return (ConfigError, DatasetError, FileNotFoundError, ValueError, KeyError)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="YAML config (see src/maskpose/configs/synthetic.yaml)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt if it exists."),
) -> None:
    """Train a detector from masks alone. Extra arguments are dotted overrides: optim.steps=5000 loss.prop=0.5"""
    from .config import load_yaml
    from .train import TrainConfig, train as run_train

    try:
        cfg = load_yaml(TrainConfig, config, list(ctx.args))
        summary = run_train(cfg, resume=resume)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    typer.echo(f"trained {summary['step']} steps in {summary['minutes']:.1f} min; checkpoint: {summary['checkpoint']}")


@app.command("eval")
def eval_cmd(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by maskpose train."),
    data: Path = typer.Argument(..., help="Dataset folder with ground truth (gt/)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write all numbers as JSON."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="Write pred/gt [N,J,3] mm and ids (npz)."),
    train_data: Optional[Path] = typer.Option(None, "--train-data", help="Training split for the mean-pose baselines (default: the checkpoint's)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Evaluate the first N samples only (0: all)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Metrics (strict and flip-aware) beside the mean-pose and oracle-yaw mean-pose baselines."""
    from .data.folder import load_dataset_meta
    from .evaluate import evaluate_model, format_table, write_outputs
    from .train import load_model, resolve_device

    try:
        meta = load_dataset_meta(data)
        dev = resolve_device(device)
        model, cfg, _ = load_model(checkpoint, dev, joint_set=meta["joint_set"])
        table = evaluate_model(model, cfg, data, dev, limit=limit, train_root=str(train_data) if train_data else None)
        write_outputs(table, str(json_out) if json_out else None, str(predictions) if predictions else None)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    typer.echo(format_table(table))


@app.command()
def fit(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by maskpose train."),
    data: Path = typer.Argument(..., help="Multi-view dataset folder."),
    iters: int = typer.Option(100, "--iters", min=1, help="Adam iterations per sample."),
    lr_mm: float = typer.Option(5.0, "--lr-mm", help="Initial step size (mm)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Metrics before/after (needs gt/)."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="Write the refined poses (npz)."),
    limit: int = typer.Option(0, "--limit", min=0),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Refine the network's 3D answer per sample against the masks (no labels)."""
    import json as _json

    import numpy as np
    import torch

    from .data.folder import MaskPoseDataset, load_dataset_meta
    from .infer import fit_poses
    from .train import load_model, predict_dataset, resolve_device

    try:
        meta = load_dataset_meta(data)
        dev = resolve_device(device)
        model, cfg, _ = load_model(checkpoint, dev, joint_set=meta["joint_set"])
        if meta["num_views"] < 2:
            _fail(f"{data}: fit needs calibrated multi-view data (num_views = {meta['num_views']})")
        res = predict_dataset(model, data, cfg, dev, limit=limit)
        ds = MaskPoseDataset(data, with_gt=False, preload=True)
        n = res["num"]
        items = [ds[i] for i in range(n)]
        st = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
        refined = fit_poses(res["joints3d"], st("masks"), st("weights"), st("crop_cameras"), st("valid"), cfg,
                            iters=iters, lr_mm=lr_mm, device=dev, progress=True)
        out = {"num_samples": n, "iters": iters}
        gt_dir = Path(data) / "gt"
        if (gt_dir / "joints3d.npy").exists():
            from . import metrics as M
            from .skeleton import get_joint_set
            js = get_joint_set(cfg.joint_set)
            gt = np.load(gt_dir / "joints3d.npy")[:n]
            for name, pred in (("before", res["joints3d"]), ("after", refined)):
                out[name] = {k: f(pred, gt, joint_set=js) for k, f in (("mpjpe", M.mpjpe), ("p_mpjpe", M.p_mpjpe), ("n_mpjpe", M.n_mpjpe))}
            typer.echo(f"fit on {n} samples: strict MPJPE {out['before']['mpjpe']:.1f} -> {out['after']['mpjpe']:.1f} mm, "
                       f"P-MPJPE {out['before']['p_mpjpe']:.1f} -> {out['after']['p_mpjpe']:.1f} mm")
        else:
            typer.echo(f"fit on {n} samples done (no gt/: no metrics)")
        if predictions:
            np.savez(predictions, pred=refined, before=res["joints3d"], ids=np.asarray(ds.ids[:n]).astype(str))
        if json_out:
            Path(json_out).write_text(_json.dumps(out, indent=2))
    except _user_errors() as e:
        _fail(str(e).strip("'\""))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Output folder."),
    minutes: float = typer.Option(5.0, "--minutes", help="Training budget (wall-clock minutes)."),
    train_samples: int = typer.Option(1500, "--train-samples", min=8),
    test_samples: int = typer.Option(200, "--test-samples", min=8),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """synth -> train (short) -> eval -> report, on the embedded synthetic default (< 10 min on 2 cores)."""
    from .demo import run_demo

    try:
        run_demo(out, train_samples=train_samples, test_samples=test_samples, minutes=minutes, device=device)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))


def main() -> None:  # pragma: no cover
    app()
