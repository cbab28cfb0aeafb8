"""TikTok dataset (Jafarian & Park, CVPR 2021): single-view frames + person masks, no poses, no cameras.

Layout (``research/dataset-formats.md`` §4)::

    SRC/00001/images/0001.png      RGB frames (portrait phone video)
    SRC/00001/masks/0001.png       single-channel, 255 = person (made with remove.bg)
    SRC/00001/densepose/0001.png   (not used)

``SRC`` may be the ``TikTok_dataset`` folder or the folder that holds it (downloads sometimes nest
``TikTok_dataset/TikTok_dataset``). Sequences: ``split="train"`` = the MaS authors' 41 sequences,
``"test"`` = sequence 326 (their list, ``X-as-Supervision dataloader_2d.py``), ``"all"`` = every
sequence found; ``sequences`` overrides. As the authors, the first and last ``trim = 20`` frames of
each sequence are dropped. Masks are thresholded at 127; a frame without a mask file or with an empty
mask is skipped (counted). The camera is unknown: each frame gets :func:`~.common.nominal_camera`
(``f = focal`` px or a 55 degree field of view across the longer side, as ``maskpose prepare``;
principal point at the centre, world = camera frame); no
``gt/`` is written.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

from .common import (CROP_MARGIN, DatasetImportError, ImportStats, ProgressFn, clean_mask, crop_view,
                     nominal_camera, read_image_rgb, read_mask_file, select_frames)

#: the MaS authors' TikTok sequences
TRAIN_SEQUENCES = (34, 35, 36, 37, 40, 42, 43, 44, 45, 58, 59, 61, 62, 63, 76, 77, 104, 107, 112, 140, 142, 144, 146,
                   152, 158, 165, 195, 208, 221, 234, 238, 249, 251, 257, 275, 277, 280, 283, 303, 313, 323)
TEST_SEQUENCES = (326,)
IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def find_tiktok_root(src: str | os.PathLike) -> Path:
    """The folder holding the 5-digit sequence folders (descends into nested ``TikTok_dataset`` folders)."""
    root = Path(src)
    if not root.is_dir():
        raise DatasetImportError(f"TikTok source folder {root} does not exist")
    for _ in range(3):
        if any(p.is_dir() and re.fullmatch(r"\d{5}", p.name) for p in root.iterdir()):
            return root
        if (root / "TikTok_dataset").is_dir():
            root = root / "TikTok_dataset"
        else:
            break
    raise DatasetImportError(f"{src}: no TikTok sequence folder (00001, 00002, ...) found")


def _sequence_names(root: Path, split: str, sequences: Iterable[int | str] | str | None) -> tuple[list[str], bool]:
    """Sequence folder names and whether they were asked for explicitly."""
    if sequences is not None:
        if isinstance(sequences, (str, int)):
            sequences = [v for v in str(sequences).split(",") if v.strip()]
        return [f"{int(str(s).strip()):05d}" for s in sequences], True
    if split == "train":
        return [f"{i:05d}" for i in TRAIN_SEQUENCES], False
    if split == "test":
        return [f"{i:05d}" for i in TEST_SEQUENCES], False
    if split == "all":
        return sorted(p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{5}", p.name)), False
    raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")


def import_tiktok(src: str | os.PathLike, out: str | os.PathLike, *, split: str = "train",
                  sequences: Iterable[int | str] | str | None = None, stride: int = 1, max_frames: int | None = None,
                  trim: int = 20, size: int = 128, focal: float | None = None, mask_min_fraction: float = 0.05,
                  image_ext: str = ".png", strict: bool = True, overwrite: bool = False,
                  progress: ProgressFn | None = None) -> dict[str, Any]:
    """Convert TikTok sequences into a single-view maskpose dataset folder (see the module docstring).

    ``stride`` / ``max_frames`` select frames per sequence after trimming (``max_frames`` spread evenly).
    A sequence of the split that is not on disk is skipped and counted (``missing_sequence``); one given
    in ``sequences`` must exist. Returns the summary dict (``path, num_samples, num_views, skipped,
    sequences, ...``).
    """
    from ..folder import DatasetWriter

    if trim < 0:
        raise ValueError(f"trim must be >= 0, got {trim}")
    root = find_tiktok_root(src)
    names, explicit = _sequence_names(root, split, sequences)
    stats = ImportStats()
    plans = []
    for name in names:
        d = root / name
        if not d.is_dir():
            if explicit:
                raise DatasetImportError(f"TikTok sequence folder {d} is missing")
            stats.skip("missing_sequence")
            continue
        if not (d / "images").is_dir():
            err = DatasetImportError(f"{d}: no images/ folder")
            if strict:
                raise err
            stats.bad(d, err)
            continue
        files = sorted(p for p in (d / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
        files = files[trim:len(files) - trim] if trim else files
        plans.append((name, d, [files[k] for k in select_frames(len(files), stride, max_frames)]))
    if not plans:
        raise DatasetImportError(f"{root}: none of the sequences {', '.join(names[:5])}"
                                 f"{' ...' if len(names) > 5 else ''} is there")
    S = int(size)
    meta = {"split": split if sequences is None else "custom", "sequences": [p[0] for p in plans], "trim": trim,
            "stride": stride, "max_frames": max_frames, "view_names": ["camera"], "mask_source": "masks/*.png > 127",
            "camera": "nominal pinhole (f = %s), world = camera frame"
                      % ("55 degree field of view" if focal is None else focal),
            "crop_margin": CROP_MARGIN, "importer": "maskpose.data.importers.tiktok"}
    total = sum(len(p[2]) for p in plans)
    done = n_written = 0
    with DatasetWriter(out, size=S, num_views=1, source="tiktok", overwrite=overwrite, image_ext=image_ext,
                       meta=meta) as writer:
        for name, d, files in plans:
            for f in files:
                done += 1
                img = read_image_rgb(f)
                mask_file = next((p for p in (d / "masks" / f"{f.stem}{e}" for e in IMAGE_EXTS) if p.is_file()), None)
                m = None if mask_file is None else read_mask_file(mask_file)
                if img is None:
                    err = DatasetImportError(f"{f}: cannot read the image")
                    if strict:
                        raise err
                    stats.bad(f, err)
                elif m is None:
                    stats.skip("missing_mask")
                elif m.shape != img.shape[:2]:
                    err = DatasetImportError(f"{mask_file}: mask is {m.shape[1]}x{m.shape[0]} px but the image is "
                                             f"{img.shape[1]}x{img.shape[0]}")
                    if strict:
                        raise err
                    stats.bad(mask_file, err)
                else:
                    m = clean_mask(m, mask_min_fraction)
                    crop, cm, A = crop_view(img, m, S) if m.any() else (None, None, None)
                    if cm is None or not cm.any():
                        stats.skip("empty_mask")
                    else:
                        cam = nominal_camera(img.shape[1], img.shape[0], focal)
                        frame = int(f.stem) if f.stem.isdigit() else done - 1
                        writer.add(f"{name}_{f.stem}", images=crop[None], masks=cm[None], K=cam.K[None],
                                   R=cam.R[None], t=cam.t[None], A=A[None], sequence=name, frame=frame)
                        n_written += 1
                if progress is not None:
                    progress(done, total)
        if n_written == 0:
            raise DatasetImportError(f"{root}: no sample could be written (skipped: {dict(stats.skipped)})")
    return stats.summary(Path(out), n_written, 1, view_names=["camera"], sequences=[p[0] for p in plans])


__all__ = ["TRAIN_SEQUENCES", "TEST_SEQUENCES", "find_tiktok_root", "import_tiktok"]
