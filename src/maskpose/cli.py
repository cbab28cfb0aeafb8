"""The ``maskpose`` command line (Typer). Each command is a thin wrapper over a plain function."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=(
        "maskpose: learn 3D human pose from foreground masks alone.\n\n"
        "Pipeline: synth | prepare | import -> dataset folder -> train -> eval / report -> "
        "predict (video or dataset -> 3D joints) / fit -> export (json/csv/npz/trc) / export-onnx."
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
    flip_test: bool = typer.Option(False, "--flip-test", help="Average each view with its mirror image (2x the network passes)."),
    no_selection: bool = typer.Option(False, "--no-selection", help="Ablation: turn the anatomical global choice of the "
                                                                    "left/right labelling off (method.selection=false)."),
) -> None:
    """Metrics (strict and flip-aware) beside the mean-pose and oracle-yaw mean-pose baselines."""
    from .data.folder import load_dataset_meta
    from .evaluate import evaluate_model, format_table, write_outputs
    from .train import load_model, resolve_device

    try:
        meta = load_dataset_meta(data)
        dev = resolve_device(device)
        model, cfg, _ = load_model(checkpoint, dev, joint_set=meta["joint_set"])
        if flip_test:
            cfg = replace(cfg, method=replace(cfg.method, flip_test=True))
        if no_selection:
            cfg = replace(cfg, method=replace(cfg.method, selection=False))
        table = evaluate_model(model, cfg, data, dev, limit=limit, train_root=str(train_data) if train_data else None)
        write_outputs(table, str(json_out) if json_out else None, str(predictions) if predictions else None)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    typer.echo(format_table(table))


@app.command()
def fit(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by maskpose train."),
    data: Path = typer.Argument(..., help="Multi-view dataset folder."),
    iters: int = typer.Option(100, "--iters", min=0,
                              help="Adam iterations per sample per cycle; 0 (with --search-cycles >= 1): the arm search "
                                   "alone, only elbows and wrists move (~13x cheaper)."),
    lr_mm: float = typer.Option(5.0, "--lr-mm", help="Initial step size (mm)."),
    search_cycles: int = typer.Option(2, "--search-cycles", min=0,
                                      help="(arm search against the masks, then the Adam fit) this many times; 0: fit only."),
    search_dirs: int = typer.Option(64, "--search-dirs", min=4, help="Directions per arm segment in the search."),
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
                            iters=iters, lr_mm=lr_mm, device=dev, progress=True, search_cycles=search_cycles,
                            search_dirs=search_dirs)
        out = {"num_samples": n, "iters": iters, "search_cycles": search_cycles}
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def selftrain(
    ctx: typer.Context,
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt of a multi-view model (maskpose train)."),
    out: Path = typer.Option(..., "--out", help="Output folder: pseudo.npz and the fine-tune's checkpoint.pt."),
    data: Optional[Path] = typer.Option(None, "--data", help="Training split (default: the checkpoint's data.train)."),
    label: str = typer.Option("1000", "--label", help="Pseudo-label N training samples per round (0: all), or one "
                                                       "count per round, comma-separated (e.g. 1000,1000,1500,1500)."),
    label_start: int = typer.Option(0, "--label-start", min=0, help="The first sample labelled."),
    window: int = typer.Option(1, "--window", min=1,
                               help="K: each round labels the next slice of --label samples (cycling over K slices) "
                                    "and trains on the labels of the last K rounds (1: every round relabels one slice)."),
    keep_labels: list[Path] = typer.Option([], "--keep-labels",
                                           help="Earlier pseudo.npz files (newest first) standing in for the rounds "
                                                "before the first one of the window."),
    workers: int = typer.Option(2, "--workers", min=1, help="One-thread labelling processes."),
    steps: int = typer.Option(1500, "--steps", min=1, help="Fine-tune steps (session 14: 1500 as good as 2000, 1000 worse)."),
    lr: float = typer.Option(3e-4, "--lr", help="Fine-tune learning rate."),
    search_cycles: int = typer.Option(2, "--search-cycles", min=0, help="(arm search, fit) cycles of the labels."),
    iters: int = typer.Option(50, "--iters", min=0, help="Fit steps per cycle; 0: labels from the arm search alone."),
    resume: bool = typer.Option(False, "--resume", help="Reuse OUT/pseudo.npz and continue OUT/checkpoint.pt."),
    share: float = typer.Option(0.5, "--share", min=0.0, max=1.0,
                                help="Fraction of each fine-tune batch drawn from the labelled samples (0: uniform)."),
    pull_rounds: int = typer.Option(2, "--pull-rounds", min=0,
                                    help="The first N rounds keep the hand pull on their unlabelled samples; later "
                                         "rounds train on the labels without it."),
    rounds: int = typer.Option(1, "--rounds", min=1, help="Rounds, each labelled by the previous one's model "
                                                           "(more than 1: into OUT/round1, OUT/round2, ...)."),
    max_minutes: float = typer.Option(0.0, "--max-minutes", min=0.0,
                                      help="Wall-clock budget: no round is started that the last round's duration "
                                           "says would end past it (0: run all --rounds)."),
) -> None:
    """Label-free self-training: fit + arm search label the training masks, then a fine-tune pulls the
    network towards those labels. Extra arguments are dotted overrides of the fine-tune's config."""
    from .selftrain import self_train_rounds

    try:
        counts = [int(n) for n in label.split(",")]
    except ValueError:
        _fail(f"--label: expected a count or comma-separated counts, got {label!r}")
    try:
        summaries = self_train_rounds(checkpoint, out, rounds=rounds, label=counts if len(counts) > 1 else counts[0],
                                      workers=workers, steps=steps, lr=lr, data=data, overrides=list(ctx.args), cycles=search_cycles, iters=iters,
                                      resume=resume, share=share, window=window, start=label_start,
                                      keep=list(keep_labels), pull_rounds=pull_rounds, max_minutes=max_minutes,
                                      progress=typer.echo)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    for summary in summaries:
        used = (f"on {summary['labelled']} pseudo-labels" if summary["pseudo_weight"] > 0
                else f"with the pseudo-label pull off (loss.pseudo=0; {summary['labelled']} labels written)")
        head = f"round {summary['round']}: " if rounds > 1 else ""
        typer.echo(f"{head}self-trained {summary['step']} steps {used} in "
                   f"{summary['minutes']:.1f} min; checkpoint: {summary['checkpoint']}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Output folder."),
    minutes: float = typer.Option(7.5, "--minutes", help="Training budget (wall-clock minutes)."),
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


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by maskpose train."),
    inputs: List[Path] = typer.Argument(..., help="A dataset folder, or a video / image folder / folder of videos "
                                                  "(several paths: one per view)."),
    out: Path = typer.Option(Path("predictions"), "--out", help="Output folder: poses.<format> (and prepared/ for video input)."),
    formats: str = typer.Option("json", "--format", help="Comma-separated: json, csv, npz, trc."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Camera file for video input (toml, .qca.txt, EasyMocap yml, H36M)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Samples (all views) per network pass."),
    smooth: str = typer.Option("none", "--smooth", help="none | oneeuro | butterworth (temporal smoothing)."),
    cutoff: float = typer.Option(6.0, "--cutoff", help="butterworth: low-pass cutoff (Hz)."),
    min_cutoff: float = typer.Option(1.0, "--min-cutoff", help="oneeuro: cutoff at rest (Hz)."),
    beta: float = typer.Option(0.01, "--beta", help="oneeuro: cutoff gain per mm/s of speed."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate (default: from the data); needed to smooth."),
    refine: bool = typer.Option(False, "--refine", help="Refine each multi-view pose against the masks (slow)."),
    refine_iters: int = typer.Option(100, "--refine-iters", min=1),
    refine_search_cycles: int = typer.Option(2, "--refine-search-cycles", min=0,
                                             help="With --refine: (arm search, fit) cycles; 0: fit only."),
    reject: bool = typer.Option(True, "--reject/--no-reject", help="Per-joint outlier-view rejection before the DLT."),
    reject_k: float = typer.Option(3.0, "--reject-k", help="Reject a view above k x the median error of the others."),
    reject_threshold: float = typer.Option(0.1, "--reject-threshold", help="... and above this fraction of the crop side."),
    confidence_weights: bool = typer.Option(True, "--confidence-weights/--no-confidence-weights",
                                            help="Weight each view by the detector's per-joint confidence."),
    flip_test: bool = typer.Option(False, "--flip-test", help="Average each view with its mirror image (2x the network passes)."),
    single_view: bool = typer.Option(False, "--single-view", help="Use one view only (root-relative camera-frame 3D)."),
    view: int = typer.Option(0, "--view", min=0, help="The view used by --single-view."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1),
    stride: int = typer.Option(1, "--stride", min=1),
    start: int = typer.Option(0, "--start", min=0, help="Video input: first frame."),
    size: Optional[int] = typer.Option(None, "--size", help="Video input: crop size (default: the checkpoint's)."),
    masker: str = typer.Option("median", "--masker", help="Video input: median | mog2 | knn (background model) | mediapipe (person segmenter, `make mediapipe`)."),
    masks_dir: Optional[Path] = typer.Option(None, "--masks-dir", help="Video input: your own masks instead of --masker."),
    grabcut: bool = typer.Option(False, "--grabcut", help="Video input: refine masks with GrabCut."),
    y_up: bool = typer.Option(False, "--y-up", help="Write Y-up coordinates (OpenSim)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace earlier outputs (and OUT/prepared)."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Write an overlay video (.mp4/.avi) of the 2D joints on the input videos."),
    overlay_height: int = typer.Option(360, "--overlay-height", min=32, help="Overlay: tile height in px."),
    animate: Optional[Path] = typer.Option(None, "--animate", help="Write an animated 3D skeleton (.gif or .mp4)."),
) -> None:
    """3D joints from a trained checkpoint on a dataset folder, videos or image folders."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .predict import predict as run_predict, save_predictions

    fmts = [f.strip().lower() for f in formats.split(",") if f.strip()]
    params = {"cutoff": cutoff} if smooth == "butterworth" else {"min_cutoff": min_cutoff, "beta": beta}
    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    tasks: dict = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done)

    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # predict's notes are printed below instead
            seq = run_predict(checkpoint, inputs[0] if len(inputs) == 1 else list(inputs), out_dir=out,
                              calibration=calibration, device=device, batch_size=batch_size,
                              smoothing=None if smooth == "none" else smooth, smoothing_params=params if smooth != "none" else None,
                              refine=refine, refine_iters=refine_iters,
                              refine_search_cycles=refine_search_cycles, reject_outlier_views=reject, reject_k=reject_k,
                              reject_threshold=reject_threshold, confidence_weights=confidence_weights, flip_test=flip_test,
                              single_view=single_view, view=view, max_frames=max_frames, stride=stride, masker=masker,
                              size=size, fps=fps, overwrite=overwrite,
                              prepare_options={"start": start, "masks_dir": masks_dir, "grabcut": grabcut},
                              progress=on_progress)
        if "trc" in fmts and not seq.fps:  # checked before anything is written
            raise ValueError("--format trc needs the frame rate and the input has none (a dataset folder "
                             "without fps in meta.json): pass --fps")
        paths = save_predictions(seq, out, fmts, overwrite=overwrite, y_up=y_up)
        paths += _predict_visuals(seq, inputs, out, overlay, overlay_height, animate, overwrite)
    except _user_errors() as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    finally:
        bar.stop()
    m = seq.meta
    typer.echo(f"predicted {seq.num_frames} frames x {seq.num_joints} joints ({m['mode']}, {seq.frame} frame, mm) "
               f"in {m['seconds']:.1f} s ({m['frames_per_s']:.1f} frames/s) -> " + ", ".join(str(p) for p in paths))
    for note in m["notes"]:
        typer.echo(f"note: {note}")


@app.command("export")
def export_cmd(
    predictions: Path = typer.Argument(..., help="Poses written by predict (.json / .npz / .csv) or eval --predictions (.npz)."),
    out: Path = typer.Option(..., "--out", help="Output file; the format follows its suffix unless --format."),
    fmt: Optional[str] = typer.Option(None, "--format", help="json | csv | npz | trc"),
    y_up: bool = typer.Option(False, "--y-up", help="Rotate to OpenSim's Y-up (world assumed Z-up, as Pose2Sim)."),
    units: str = typer.Option("mm", "--units", help="mm | m"),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate when the file has none; TRC needs one."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Convert saved 3D poses between json, csv, npz and OpenSim TRC."""
    from .export import convert_poses

    try:
        path = convert_poses(predictions, out, fmt, overwrite=overwrite, y_up=y_up, units=units, fps=fps)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    typer.echo(f"wrote {path}")


@app.command("export-onnx")
def export_onnx_cmd(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by maskpose train."),
    out: Path = typer.Argument(..., help="Output .onnx file."),
    size: Optional[int] = typer.Option(None, "--size", help="Crop size S (default: recorded with the checkpoint)."),
    opset: int = typer.Option(17, "--opset"),
    static_batch: Optional[int] = typer.Option(None, "--static-batch", min=1, help="Fixed batch size (default: dynamic)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare onnxruntime with torch after export."),
) -> None:
    """Export the detector to ONNX (input 'images' [B, C, S, S]; outputs joints2d, depth, confidence, girth)."""
    from .export_onnx import export_onnx

    try:
        path = export_onnx(checkpoint, out, size=size, opset=opset, dynamic_batch=static_batch is None,
                           batch_size=static_batch or 1, overwrite=overwrite, check=check)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    except ImportError as e:
        _fail(f"ONNX export needs the onnx extra (pip install 'maskpose[onnx]'): {e}")
    typer.echo(f"wrote {path}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Run directory (log.out of maskpose train, or a maskpose demo --out folder) or its checkpoint.pt."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output HTML file (default: RUN_DIR/report.html)."),
    samples: int = typer.Option(4, "--samples", min=0, help="Samples shown in each of the best / worst groups (0: none)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Dataset to evaluate and draw (default: the run's eval JSON test set, else the config's data.test)."),
    max_eval: int = typer.Option(200, "--max-eval", min=0, help="Evaluate / rank at most the first N samples (0: all)."),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda"),
) -> None:
    """One self-contained HTML page about a run: metrics beside baselines, curves, best/worst samples, config."""
    from .report import ReportError, write_report

    try:
        path = write_report(run_dir, out, dataset=dataset, num_panels=samples, max_eval_samples=max_eval, device=device)
    except (ReportError, *_user_errors()) as e:
        _fail(str(e).strip("'\""))
    typer.echo(f"wrote {path}")


def _predict_visuals(seq, inputs, out: Path, overlay: Optional[Path], overlay_height: int,
                     animate: Optional[Path], overwrite: bool) -> list:
    """The optional overlay video (on the source videos, read back from the prepared folder's
    meta.json) and 3D animation of ``maskpose predict``."""
    import json as _json

    from . import viz

    written = []
    for p in (overlay, animate):
        if p is not None and Path(p).exists() and not overwrite:
            raise ValueError(f"{p} already exists; pass --overwrite to replace it")
    if overlay is not None:
        data_dir = Path(inputs[0]) if len(inputs) == 1 and (Path(inputs[0]) / "meta.json").is_file() else out / "prepared"
        try:
            sources = _json.loads((data_dir / "meta.json").read_text()).get("inputs")
        except (OSError, ValueError):
            sources = None
        if not sources:
            raise ValueError(f"--overlay draws on the source videos, and {data_dir} does not record any "
                             "(it was not made by maskpose prepare)")
        written.append(viz.overlay_poses(seq, sources, overlay, tile_height=overlay_height))
    if animate is not None:
        written.append(viz.animate_3d(seq.joints3d, animate, fps=seq.fps or 25,
                                      joint_set=viz.joint_set_for_names(seq.joint_names),
                                      up_axis="-y" if seq.frame == "camera" else "auto"))
    return written


@app.command()
def prepare(
    inputs: List[Path] = typer.Argument(..., help="A folder of videos (one per view), one video, an image folder, a folder of image folders, or several paths (one per view)."),
    out: Path = typer.Option(..., "--out", help="Output dataset folder (an interrupted run resumes here)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Pose2Sim/anipose .toml, Qualisys .qca.txt, EasyMocap intri/extri.yml folder, H36M metadata.xml#S9. Required for several views."),
    size: int = typer.Option(128, "--size", min=8, help="Crop size S in pixels."),
    stride: int = typer.Option(1, "--stride", min=1, help="Use every k-th frame."),
    start: int = typer.Option(0, "--start", min=0, help="First frame."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="At most N instants."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Your own masks: one sub-folder per view (see docs/prepare.md) instead of a background model."),
    masker: str = typer.Option("median", "--masker", help="median | mog2 | knn (background model learnt from the video) | mediapipe (learned person segmenter, needs `make mediapipe`)."),
    grabcut: bool = typer.Option(False, "--grabcut", help="Refine each mask with GrabCut (slow)."),
    fov: float = typer.Option(55.0, "--fov", help="Uncalibrated single view: assumed field of view across the longer side (deg)."),
    allow_border: bool = typer.Option(False, "--allow-border", help="Keep views where the person touches the image border."),
    jpg: bool = typer.Option(False, "--jpg", help="Write crops as JPEG instead of PNG."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over instead of resuming."),
) -> None:
    """Your videos (+ calibration) -> a dataset folder: foreground masks from the video, the main person tracked, crops, crop cameras."""
    import warnings

    from .data.prepare import prepare_dataset

    try:
        with _Bar("prepare") as bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = prepare_dataset(inputs[0] if len(inputs) == 1 else list(inputs), out, calibration=calibration,
                                  size=size, stride=stride, start=start, max_frames=max_frames, masks_dir=masks,
                                  masker=masker, grabcut=grabcut, overwrite=overwrite, progress=bar, fov_deg=fov,
                                  allow_border=allow_border, image_ext=".jpg" if jpg else ".png")
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    except OSError as e:
        _fail(f"{e.filename or out}: {e.strerror or e}")
    for w in dict.fromkeys([str(w.message) for w in caught] + [str(w) for w in res.get("warnings") or []]):
        typer.echo(f"warning: {w}")
    typer.echo(f"wrote {res['num_samples']} samples x {res['num_views']} views ({', '.join(res['view_names'])}) to "
               f"{res['out']} in {res['seconds']:.1f} s (resumed {res.get('resumed', 0)}, computed {res.get('computed', 0)})")
    skipped = {k: v for k, v in (res.get("skipped") or {}).items() if v}
    if skipped:
        typer.echo("skipped instants: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    inv = res.get("invalid_views")
    if inv:
        typer.echo(f"invalid views: {inv}")


# ---------------------------------------------------------------------------------------- helpers
class _Bar:
    """A rich progress bar fed by ``progress(done, total)`` callbacks; starts on the first call."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.label = label
        self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), transient=False)
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.bar.stop()


def _csv(value: Optional[str]):
    """``"a,b"`` -> ``["a", "b"]``; None/"" -> None."""
    if value is None or not value.strip():
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _print_import_summary(res: dict) -> None:
    typer.echo(f"wrote {res.get('num_samples', '?')} samples x {res.get('num_views', '?')} views to {res.get('out', res.get('path', '?'))}")
    skipped = {k: v for k, v in (res.get("skipped") or {}).items() if v}
    if skipped:
        typer.echo("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    for f in (res.get("bad_files") or [])[:20]:
        typer.echo(f"  unreadable: {f}")


# ---------------------------------------------------------------------------------------- import
import_app = typer.Typer(no_args_is_help=True, help=(
    "Convert a public dataset's release layout into a maskpose dataset folder "
    "(masks from the dataset's own foreground masks; GT in gt/ for evaluation only)."))
app.add_typer(import_app, name="import")

_SIZE = typer.Option(128, "--size", min=8, help="Crop size S in pixels.")
_MAXF = typer.Option(None, "--max-frames", min=1, help="At most N frames per sequence, spread evenly.")
_EXT = typer.Option("png", "--image-ext", help="png | jpg (crops written as).")
_MINFRAC = typer.Option(0.05, "--mask-min-fraction", help="Drop mask pieces smaller than this fraction of the largest.")
_STRICT = typer.Option(True, "--strict/--no-strict", help="Stop on an unreadable source file (default) or skip and list it.")
_OVER = typer.Option(False, "--overwrite", help="Replace a dataset already in OUT.")


def _run_import(fn, label: str, src: Path, out: Path, **kw) -> None:
    from .data.importers import DatasetImportError  # noqa: F401  (a ValueError)

    kw["image_ext"] = "." + kw["image_ext"].lstrip(".")
    try:
        with _Bar(label) as bar:
            res = fn(src, out, progress=bar, **kw)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    except OSError as e:
        _fail(f"{e.filename or out}: {e.strerror or e}")
    _print_import_summary(res)


@import_app.command("h36m")
def import_h36m_cmd(
    src: Path = typer.Argument(..., help="Human3.6M release root (S1/, S5/, ... with Videos/, MyPoseFeatures/, ground_truth_bs/)."),
    out: Path = typer.Argument(..., help="Output dataset folder."),
    split: str = typer.Option("train", "--split", help="train (S1,5,6,7,8) | test (S9,11) | all"),
    subjects: Optional[str] = typer.Option(None, "--subjects", help="Comma list, e.g. S9,S11 (overrides --split)."),
    actions: Optional[str] = typer.Option(None, "--actions", help="paper | all | comma list (default: all 15)."),
    cameras: Optional[str] = typer.Option(None, "--cameras", help="Comma list of camera ids or indices 0-3 (default: all 4)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="metadata.xml or camera-parameters.json (default: found in SRC)."),
    stride: int = typer.Option(5, "--stride", min=1), max_frames: Optional[int] = _MAXF, size: int = _SIZE,
    min_views: int = typer.Option(1, "--min-views", min=1), image_ext: str = _EXT, mask_min_fraction: float = _MINFRAC,
    strict: bool = _STRICT, overwrite: bool = _OVER,
) -> None:
    """Human3.6M: 4 synchronised views, ground_truth_bs masks, lens model removed, 18 joints (thorax added)."""
    from .data.importers import import_h36m

    act = actions if actions in (None, "paper", "all") else _csv(actions)
    _run_import(import_h36m, "import h36m", src, out, split=split, subjects=_csv(subjects), actions=act,
                cameras=_csv(cameras), calibration=calibration, stride=stride, max_frames=max_frames, size=size,
                min_views=min_views, image_ext=image_ext, mask_min_fraction=mask_min_fraction, strict=strict,
                overwrite=overwrite)


@import_app.command("3dhp")
def import_3dhp_cmd(
    src: Path = typer.Argument(..., help="MPI-INF-3DHP root (S1..S8/Seq1..2, or mpi_inf_3dhp_test_set/)."),
    out: Path = typer.Argument(..., help="Output dataset folder."),
    split: str = typer.Option("train", "--split", help="train | val | test"),
    subjects: Optional[str] = typer.Option(None, "--subjects", help="Comma list, e.g. S1,S2."),
    sequences: Optional[str] = typer.Option(None, "--sequences", help="Seq1,Seq2 (train) or TS1,...,TS6 (test)."),
    cameras: Optional[str] = typer.Option(None, "--cameras", help="Comma list of camera indices (default 0,2,4,7,8)."),
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Default 5 (train) / 1 (test)."),
    max_frames: Optional[int] = _MAXF, size: int = _SIZE,
    chair_masks: bool = typer.Option(True, "--chair-masks/--no-chair-masks", help="Remove the chair from the FG masks."),
    occlusion_filter: bool = typer.Option(True, "--occlusion-filter/--no-occlusion-filter", help="Leave out occluded frames (paper §4.1)."),
    fix_quirks: bool = typer.Option(True, "--fix-quirks/--no-fix-quirks", help="Apply the known annotation fixes."),
    masks_dir: Optional[Path] = typer.Option(None, "--masks-dir", help="Test set: your own masks (the test set ships none)."),
    min_views: int = typer.Option(1, "--min-views", min=1), image_ext: str = _EXT, mask_min_fraction: float = _MINFRAC,
    strict: bool = _STRICT, overwrite: bool = _OVER,
) -> None:
    """MPI-INF-3DHP: multi-view training set (FG minus chair masks) or the single-view test set."""
    from .data.importers import import_3dhp

    _run_import(import_3dhp, "import 3dhp", src, out, split=split, subjects=_csv(subjects), sequences=_csv(sequences),
                cameras=_csv(cameras), stride=stride, max_frames=max_frames, size=size, chair_masks=chair_masks,
                occlusion_filter=occlusion_filter, fix_known_quirks=fix_quirks, masks_dir=masks_dir,
                min_views=min_views, image_ext=image_ext, mask_min_fraction=mask_min_fraction, strict=strict,
                overwrite=overwrite)


@import_app.command("tiktok")
def import_tiktok_cmd(
    src: Path = typer.Argument(..., help="TikTok_dataset root (one folder per sequence with images/ and masks/)."),
    out: Path = typer.Argument(..., help="Output dataset folder."),
    split: str = typer.Option("train", "--split", help="train (the authors' 41 sequences) | test (326) | all"),
    sequences: Optional[str] = typer.Option(None, "--sequences", help="Comma list of sequence numbers."),
    stride: int = typer.Option(1, "--stride", min=1), max_frames: Optional[int] = _MAXF,
    trim: int = typer.Option(20, "--trim", min=0, help="Frames dropped at each end of a sequence."),
    focal: Optional[float] = typer.Option(None, "--focal", help="Focal length in px (default: 55 deg horizontal FOV)."),
    size: int = _SIZE, image_ext: str = _EXT, mask_min_fraction: float = _MINFRAC, strict: bool = _STRICT,
    overwrite: bool = _OVER,
) -> None:
    """TikTok dances: single view, the dataset's masks, no labels."""
    from .data.importers import import_tiktok

    _run_import(import_tiktok, "import tiktok", src, out, split=split, sequences=_csv(sequences), stride=stride,
                max_frames=max_frames, trim=trim, focal=focal, size=size, image_ext=image_ext,
                mask_min_fraction=mask_min_fraction, strict=strict, overwrite=overwrite)


@import_app.command("mpii")
def import_mpii_cmd(
    src: Path = typer.Argument(..., help="MPII root (images/ and annotations)."),
    out: Path = typer.Argument(..., help="Output dataset folder."),
    split: str = typer.Option("val", "--split", help="val | train | trainval"),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="mmpose/HRNet json or the official .mat."),
    images_dir: Optional[Path] = typer.Option(None, "--images-dir"),
    masks_dir: Optional[Path] = typer.Option(None, "--masks-dir", help="Your own masks (MPII ships none)."),
    stride: int = typer.Option(1, "--stride", min=1), max_frames: Optional[int] = _MAXF,
    focal: Optional[float] = typer.Option(None, "--focal", help="Focal length in px (default: 55 deg horizontal FOV)."),
    size: int = _SIZE, image_ext: str = _EXT, mask_min_fraction: float = _MINFRAC, strict: bool = _STRICT,
    overwrite: bool = _OVER,
) -> None:
    """MPII Human Pose: single view, 2D labels (gt/joints2d.npy) for generalisation checks; no masks."""
    from .data.importers import import_mpii

    _run_import(import_mpii, "import mpii", src, out, split=split, annotations=annotations, images_dir=images_dir,
                masks_dir=masks_dir, stride=stride, max_frames=max_frames, focal=focal, size=size,
                image_ext=image_ext, mask_min_fraction=mask_min_fraction, strict=strict, overwrite=overwrite)


@app.command("convert-calibration")
def convert_calibration_cmd(
    src: Path = typer.Argument(..., help="Calibration: Pose2Sim/anipose .toml, Qualisys .qca.txt, EasyMocap intri/extri.yml folder, H36M metadata.xml#S9."),
    dst: Path = typer.Argument(..., help="Output: *.toml, *.qca.txt, or a folder (EasyMocap intri.yml + extri.yml)."),
    from_format: Optional[str] = typer.Option(None, "--from", help="toml | qualisys | easymocap | h36m (default: guess)."),
    to_format: Optional[str] = typer.Option(None, "--to", help="toml | qualisys | easymocap (default: from DST)."),
    units: str = typer.Option("auto", "--units", help="Translation units of SRC: auto | m | cm | mm."),
    out_units: str = typer.Option("m", "--out-units", help="m (as Pose2Sim / EasyMocap expect) | mm."),
    binning_factor: int = typer.Option(1, "--binning-factor", min=1, help="Qualisys: sensor pixels per video pixel."),
    distortion_scale: float = typer.Option(1.0, "--distortion-scale", help="Qualisys: 1/64 reproduces Pose2Sim's distortion scaling."),
) -> None:
    """Convert a camera calibration between formats (all go through maskpose's Camera: mm, world->camera)."""
    from .data.calibration import convert_calibration

    try:
        cams = convert_calibration(src, dst, from_format=from_format, to_format=to_format, units=units,
                                   out_units=out_units, binning_factor=binning_factor, distortion_scale=distortion_scale)
    except _user_errors() as e:
        _fail(str(e).strip("'\""))
    typer.echo(f"wrote {len(cams)} cameras ({', '.join(c.name for c in cams)}) to {dst}")


def main() -> None:  # pragma: no cover
    app()
