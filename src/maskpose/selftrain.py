"""Label-free self-training (``maskpose selftrain``): one round of pseudo-labels from the model's own
answers refined against the masks, then a fine-tune that pulls the network towards them.

1. :func:`label_samples` — the model's 3D answers on a slice of the training split, refined per sample by
   ``maskpose fit`` with the arm search (:func:`maskpose.infer.fit_poses`); no labels are read.
2. :func:`pseudo_label` — the same over the first ``N`` samples, split between one-thread worker processes,
   merged and written atomically (``pred [N, J, 3]`` world mm, ``before``, ``ids``): the file
   ``data.pseudo`` of a training config reads.
3. :func:`self_train` — the fine-tune: ``init`` = the checkpoint, ``data.pseudo`` = that file,
   ``data.pseudo_share = 0.5`` (half of each batch from the labelled samples: with 1000 labels in 12000
   samples a uniform batch of 8 held 0.67 of them, so each label was seen about once in 2000 steps),
   ``loss.pseudo = 1`` (every joint pulled to its label in every view, Cauchy in px), the hand pull to the
   masks' extremities either off (``loss.extremity = 0``: the labels alone place the arms) or, with
   ``pull=True``, on for the unlabelled samples only (``loss.pseudo_no_pull``), the given learning rate and
   steps; everything else is the checkpoint's own config (plus dotted overrides). ``resume`` reuses a finished label file and continues
   an interrupted fine-tune from ``OUT/checkpoint.pt``.
4. :func:`self_train_rounds` — several rounds, each labelled by the previous round's model; the first
   ``pull_rounds`` (default 2) keep the pull; ``max_minutes`` stops the chain before a round that would end
   past a wall-clock budget (session 15: seed 1 needed five rounds for wrists < 200 mm, seed 2's fifth ended
   at 61 minutes on a slowed host). Session 13: with the pull on, a late round's network left the
   walking samples' wrists ~150 mm too high (the pull lifts hands hidden in the silhouette towards other
   extremities); the same fourth-round fine-tune without it: wrists 202.8 -> 191.0. In the first round the
   pull is still needed (off: 235.1 -> 250.6). Defaults: 1500 fine-tune steps and 50 fit steps per label
   cycle (session 14, A/B from the same model and labels: 1500 steps gave round 1 wrists 235.6 and round 4
   187.9 against 235.0 and 188.1 with 2000; 1000 steps gave round 4 197.6).

Measured (``docs/results/training-notes.md``, sessions 6–9): one round with labels for 1000 of 12000
samples took a 13000-step model from 98.3 / 93.9 to 86.4 / 83.1 mm strict MPJPE / P-MPJPE (the same
fine-tune without labels: 97.1 / 92.1); the wrists gain 8–13 mm and no more, and even the ground truth as
labels leaves them near 177 mm after 2000 steps (session 9).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def label_samples(checkpoint: str | os.PathLike, data_root: str | os.PathLike, start: int = 0, limit: int = 0,
                  cycles: int = 2, iters: int = 100, dirs: int = 64, batch_size: int = 64,
                  device: str = "auto") -> dict[str, np.ndarray]:
    """Pseudo-labels for samples ``start .. start + limit - 1`` (``limit = 0``: to the end).

    Returns ``pred [n, J, 3]`` (refined, world mm), ``before [n, J, 3]`` (the network's answers) and
    ``ids [n]`` (str). ``iters = 0`` with ``cycles >= 1`` is the arm search alone.
    """
    from .data.folder import MaskPoseDataset
    from .infer import fit_poses
    from .train import load_model, predict_dataset, resolve_device

    dev = resolve_device(device)
    model, cfg, _ = load_model(checkpoint, dev)
    ds = MaskPoseDataset(data_root, with_gt=False, preload=False)  # only the slice is read below
    if start < 0 or start >= len(ds):
        raise ValueError(f"{data_root}: no sample {start} (it has {len(ds)})")
    end = len(ds) if limit <= 0 else min(len(ds), start + limit)
    res = predict_dataset(model, ds, cfg, dev, start=start, limit=end)
    items = [ds[i] for i in range(start, end)]
    st = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
    refined = fit_poses(res["joints3d"], st("masks"), st("weights"), st("crop_cameras"), st("valid"), cfg,
                        iters=iters, batch_size=batch_size, device=dev, search_cycles=cycles, search_dirs=dirs)
    return {"pred": refined.astype(np.float32), "before": res["joints3d"].astype(np.float32),
            "ids": np.asarray(ds.ids[start:end]).astype(str)}


def _label_worker(job: dict) -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    return label_samples(**job)


def _die_with_parent(parent: int | None = None) -> None:
    """Pool initializer: on Linux, ask the kernel to end this worker when its parent dies.

    A pool's workers are ended when the parent exits normally or by an exception, but not when it is
    killed (``kill PID``, a job scheduler's time limit): they would go on labelling, unseen, beside the
    next run (seen in session 12). ``parent``: the pid that started the pool; a worker whose parent died
    before this request was made (already re-parented; seen in session 13) ends at once. Elsewhere this
    does nothing."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            return
        if parent is not None and os.getppid() != parent:
            os._exit(1)


def write_pseudo(path: str | os.PathLike, parts: list[dict[str, np.ndarray]]) -> int:
    """Merge label parts and write ``path`` atomically (temp file + rename); returns the sample count."""
    pred = np.concatenate([p["pred"] for p in parts])
    before = np.concatenate([p["before"] for p in parts])
    ids = np.concatenate([p["ids"] for p in parts])
    if len(set(ids.tolist())) != len(ids):
        raise ValueError(f"{path}: the pseudo-label parts overlap")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, pred=pred, before=before, ids=ids)
    os.replace(tmp, path)
    return len(ids)


def pseudo_label(checkpoint: str | os.PathLike, data_root: str | os.PathLike, out: str | os.PathLike,
                 num: int = 1000, workers: int = 2, cycles: int = 2, iters: int = 100, dirs: int = 64,
                 device: str = "auto", start: int = 0) -> int:
    """Label ``num`` samples of ``data_root`` from sample ``start`` on (``num = 0``: to the end) with
    ``workers`` one-thread processes (1: in this process) and write ``out``; returns the number labelled."""
    from .data.folder import load_dataset_meta

    total = int(load_dataset_meta(data_root)["num_samples"])
    if not 0 <= start < total:
        raise ValueError(f"selftrain: {data_root} has {total} samples; cannot label from sample {start}")
    end = total if num <= 0 else min(start + num, total)
    if workers < 1:
        raise ValueError(f"selftrain: workers must be >= 1, got {workers}")
    chunk = -(-(end - start) // workers)
    jobs = [dict(checkpoint=str(checkpoint), data_root=str(data_root), start=s, limit=min(chunk, end - s),
                 cycles=cycles, iters=iters, dirs=dirs, device=device) for s in range(start, end, chunk)]
    if len(jobs) == 1:
        parts = [label_samples(**jobs[0])]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(len(jobs), initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
            parts = pool.map(_label_worker, jobs)
    return write_pseudo(out, parts)


def merge_pseudo(path: str | os.PathLike, newest: str | os.PathLike, older: list[str | os.PathLike]) -> int:
    """Write ``path``: the labels of ``newest`` plus those of ``older`` files (newest first) for samples
    ``newest`` does not label; returns the sample count. A missing or unreadable file is a clear error."""
    parts, seen = [], set()
    for f in [newest, *older]:
        try:
            with np.load(f) as z:
                part = {k: np.asarray(z[k]) for k in ("pred", "before", "ids")}
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"selftrain: cannot read pseudo-labels from {f}: {e}") from None
        ids = part["ids"].astype(str)
        fresh = np.array([i not in seen for i in ids], dtype=bool)
        seen.update(ids.tolist())
        parts.append({k: v[fresh] for k, v in part.items()})
    return write_pseudo(path, parts)


def self_train(checkpoint: str | os.PathLike, out: str | os.PathLike, label: int = 1000, workers: int = 2,
               steps: int = 1500, lr: float = 3e-4, data: str | os.PathLike | None = None,
               overrides: list[str] | None = None, cycles: int = 2, iters: int = 50, dirs: int = 64,
               resume: bool = False, share: float = 0.5, start: int = 0,
               keep: list[str | os.PathLike] | None = None, batches=None, pull: bool = False,
               progress=print) -> dict:
    """One round: pseudo-labels for ``label`` training samples from sample ``start`` on, then the fine-tune
    into ``out``.

    ``data``: the training split (default: the checkpoint's ``data.train``). ``share``: the fraction of each
    fine-tune batch drawn from the labelled samples (``data.pseudo_share``; 0: uniform over all, as before
    session 11). ``keep``: earlier label files (newest first) whose labels of other samples are trained on
    too (``OUT/pseudo_train.npz``; this round's own labels stay in ``OUT/pseudo.npz``). ``batches``: the
    training split already loaded (:class:`maskpose.train.TensorBatches`, reused across rounds). Returns the
    training summary with ``pseudo`` (the file trained on) and ``labelled`` (its sample count) added.
    ``pull``: keep the hand pull to the masks' extremities (the checkpoint's ``loss.extremity``) on the
    samples without a label (``loss.pseudo_no_pull``); default off: the labels alone place the arms.
    """
    from .config import apply_overrides
    from .data.folder import load_dataset_meta
    from .train import config_from_checkpoint, load_checkpoint, train

    if steps < 1 or lr <= 0 or not 0.0 <= share <= 1.0:
        raise ValueError(f"selftrain: steps must be >= 1, lr > 0 and share in [0, 1], got {steps}, {lr}, {share}")
    cfg = config_from_checkpoint(load_checkpoint(checkpoint))
    train_root = Path(data) if data else Path(cfg.data.train)
    meta = load_dataset_meta(train_root)
    if meta["joint_set"] != cfg.joint_set:
        raise ValueError(f"{train_root} uses joint set {meta['joint_set']!r}, checkpoint {checkpoint} {cfg.joint_set!r}")
    if int(meta["num_views"]) < 2:
        raise ValueError(f"{train_root}: self-training needs calibrated multi-view data (num_views = {meta['num_views']})")
    out = Path(out)
    pseudo = out / "pseudo.npz"
    labelled = 0
    if resume and pseudo.is_file():
        with np.load(pseudo) as z:
            labelled = len(z["ids"])
        progress(f"reusing {labelled} pseudo-labels from {pseudo}")
    else:
        progress(f"pseudo-labelling {label or meta['num_samples']} samples of {train_root} from sample {start} "
                 f"with {workers} worker(s)")
        labelled = pseudo_label(checkpoint, train_root, pseudo, num=label, workers=workers, cycles=cycles,
                                iters=iters, dirs=dirs, start=start)
    if keep:
        pseudo = out / "pseudo_train.npz"
        labelled = merge_pseudo(pseudo, out / "pseudo.npz", list(keep))
        progress(f"training on {labelled} pseudo-labels: these and those of {', '.join(map(str, keep))}")
    ft = replace(cfg, init=str(checkpoint),
                 data=replace(cfg.data, train=str(train_root), pseudo=str(pseudo), pseudo_share=share),
                 loss=replace(cfg.loss, pseudo=cfg.loss.pseudo or 1.0, extremity_exclude_body_from=0,
                              **({"pseudo_no_pull": True} if pull else {"extremity": 0.0})),
                 optim=replace(cfg.optim, lr=lr, steps=steps, max_minutes=0, warmup=min(cfg.optim.warmup, steps // 10)),
                 log=replace(cfg.log, out=str(out)))
    if overrides:
        ft = apply_overrides(ft, list(overrides))
    ft.validate()
    if batches is not None and (Path(batches.root) != train_root or batches.input_mode != ft.model.input):
        batches = None  # loaded for another split or input: train() loads its own
    summary = train(ft, resume=resume, data=batches)
    summary.update(pseudo=str(pseudo), labelled=labelled, pseudo_weight=float(ft.loss.pseudo))
    return summary


def self_train_rounds(checkpoint: str | os.PathLike, out: str | os.PathLike, rounds: int = 1,
                      window: int = 1, start: int = 0, keep: list[str | os.PathLike] | None = None,
                      label: int | list[int] = 1000, pull_rounds: int = 2, max_minutes: float = 0.0,
                      progress=print, **kw) -> list[dict]:
    """``rounds`` rounds of :func:`self_train`, each labelled by the previous round's model.

    ``label``: the samples labelled per round, one number or one per round (e.g. ``[1000, 1000, 1500,
    1500]``: later, better models label more). ``pull_rounds``: the first rounds keep the hand pull on their
    unlabelled samples (``self_train(pull=True)``), the later ones train on the labels without it. Measured
    (session 13, the 4-round recipe): the pull off cost round 1 15.5 mm on the wrists (250.6 against 235.1)
    and gained round 4 11.8 (191.0 against 202.8): early labels are too poor to place the arms alone, late
    ones better than the pull, which lifts the walking samples' wrists ~150 mm.

    ``window = K``: round ``r`` labels the slice of ``label`` samples from ``start + ((r - 1) % K) * label``
    on and trains on its labels plus those of the ``K - 1`` rounds before it (other slices, labelled by
    older models; ``keep``: label files standing in for rounds before the first, newest first). So with
    ``K = 2`` every round from the second on trains on twice as many distinct labelled samples for the
    labelling time of one slice. ``window = 1``: every round relabels the same slice.

    ``rounds = 1`` writes into ``out`` itself; more write ``out/round1``, ``out/round2``, … The training
    split is loaded once and reused by every round. With ``resume=True`` a round whose fine-tune already
    finished is continued (its labels reused, nothing retrained) and the chain goes on from it.

    ``max_minutes > 0``: a wall-clock budget for the chain. A round is not started when the minutes spent so far
    plus the last round's duration would pass it (the first round always runs), so ``rounds`` is an upper bound
    and the last checkpoint is the latest the budget allowed (session 15: on one VM the same 5-round chain ran
    38.1 and 43.3 minutes as the host's speed moved). Returns one summary per round run (``round`` added)."""
    from .train import TensorBatches, config_from_checkpoint, load_checkpoint

    import time

    if rounds < 1 or window < 1 or max_minutes < 0:
        raise ValueError(f"selftrain: rounds and window must be >= 1 and max_minutes >= 0, got {rounds}, {window} "
                         f"and {max_minutes}")
    labels = [int(n) for n in label] if isinstance(label, (list, tuple)) else [int(label)] * rounds
    if len(labels) != rounds or min(labels) < 0:
        raise ValueError(f"selftrain: --label needs one count >= 0 or one per round ({rounds}), got {label}")
    if window > 1 and (labels[0] <= 0 or len(set(labels)) > 1):
        raise ValueError("selftrain: a window of rounds needs one --label > 0 (the slice each round labels)")
    summaries = []
    ckpt = Path(checkpoint)
    recent = [Path(k) for k in (keep or [])]  # label files of earlier rounds, newest first
    cfg = config_from_checkpoint(load_checkpoint(ckpt))
    root = Path(kw["data"]) if kw.get("data") else Path(cfg.data.train)
    batches = None
    t0 = last = time.time()
    for r in range(1, rounds + 1):
        now = time.time()
        if r > 1 and max_minutes > 0 and (now - t0) + (now - last) > max_minutes * 60:
            progress(f"stopping after round {r - 1}: {(now - t0) / 60:.1f} of {max_minutes:g} minutes spent and the "
                     f"last round took {(now - last) / 60:.1f}")
            break
        last = now
        dest = Path(out) if rounds == 1 else Path(out) / f"round{r}"
        if rounds > 1:
            progress(f"round {r} of {rounds}: labels from {ckpt}")
        if batches is None and rounds > 1:
            batches = TensorBatches(root, cfg.model.input)
        summary = self_train(ckpt, dest, label=labels[r - 1], start=start + ((r - 1) % window) * labels[0],
                             keep=recent[:window - 1], batches=batches, pull=r <= pull_rounds, progress=progress,
                             **kw)
        recent.insert(0, dest / "pseudo.npz")
        summary["round"] = r
        summaries.append(summary)
        ckpt = Path(summary["checkpoint"])
    return summaries
