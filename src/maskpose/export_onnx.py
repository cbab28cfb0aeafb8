"""Export the pose detector to ONNX and run it with onnxruntime (deployment without PyTorch).

The graph
---------
Input ``images``: float32 ``[B, C, S, S]``, the detector input built by
:func:`maskpose.models.detector.make_input` (mask mode: the crop's mask in 0..1, ``C = 1``). ``S`` is
fixed at export (the template prior and the soft-argmax grid are constants of ``S``); ``B`` is a
dynamic axis named ``batch`` unless ``dynamic_batch=False``.

Outputs (the detector's ``forward`` dict, as a fixed tuple, in this order):

* ``joints2d`` ``[B, J, 2]``: (x, y) in normalised crop coordinates, pixel centre ``i ↦ 2 i/(S − 1) − 1``
  (x = column, y = row);
* ``depth`` ``[B, J]``: root-relative depth in [-1, 1] (normalised units; the caller scales to mm);
* ``confidence`` ``[B, J]``: 1 − normalised entropy of the 2D heatmap (0 uniform … 1 one cell);
* ``girth`` ``[B]``: body girth scale ``exp(0.3 tanh(logit))``.

The model's facts travel in the ONNX metadata (``metadata_props``): ``maskpose_format``
(``"maskpose-detector"``), ``input_mode``, ``size``, ``in_channels``, ``joint_set``,
``joint_names`` (JSON list), ``outputs`` (JSON list), ``maskpose_version`` and ``source``.
:class:`OnnxDetector` reads them.

The export uses the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``), which works in
torch 2.13 without extra packages; the newer ``dynamo=True`` exporter needs ``onnxscript``.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .export import ExportError
from .models.detector import Detector

OUTPUT_NAMES = ("joints2d", "depth", "confidence", "girth")
INPUT_NAME = "images"
ONNX_FORMAT = "maskpose-detector"


class DetectorOutputs(nn.Module):
    """Wraps a :class:`Detector` so that ``forward(images)`` returns the fixed tuple
    ``(joints2d [B,J,2], depth [B,J], confidence [B,J], girth [B])`` (ONNX cannot return a dict)."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor):
        out = self.detector(images)
        return out["joints2d"], out["depth"], out["confidence"], out["girth"]


@contextlib.contextmanager
def constant_template_prior(det: Detector, size: int):
    """While tracing, make the detector's template logit prior a constant of ``size``.

    ``Detector._template_prior`` recomputes the prior from traced shapes while tracing (arange over
    the heatmap size, six Newton steps of the border debiasing per axis): ~250 small ONNX nodes that
    depend on ``Shape`` of the input, so no constant folding removes them and onnxruntime runs them on
    every call. The export graph has a fixed ``S``, so the prior is a constant: this computes it once
    (eagerly, the same function the detector uses) and shadows the method on this instance until the
    block exits.
    """
    if det.template_sigma is None:
        yield
        return
    h = size // det.config.heatmap_stride
    like = torch.zeros((), dtype=torch.float32)
    with torch.no_grad():
        prior = det._template_prior(h, h, size, size, like).detach().clone()

    def fixed(h_, w_, s_h, s_w, like_):
        if (int(h_), int(w_), int(s_h), int(s_w)) != (h, h, size, size):
            raise ExportError(f"constant_template_prior: built for {size} px, the trace runs at {s_h}x{s_w}")
        return prior.to(like_.dtype)

    det._template_prior = fixed
    try:
        yield
    finally:
        del det._template_prior


def resolve_detector(model_or_checkpoint, size: int | None = None) -> tuple[Detector, int, str]:
    """``(detector in eval mode on CPU, S, source text)`` from a Detector or a checkpoint path."""
    if isinstance(model_or_checkpoint, Detector):
        det, source = model_or_checkpoint, "model object"
        if size is None:
            raise ExportError("export_onnx: give size (the crop size S the model runs at) for a model object")
    elif isinstance(model_or_checkpoint, (str, os.PathLike)):
        from .train import load_model

        ckpt = Path(model_or_checkpoint)
        try:
            det, cfg, state = load_model(ckpt, device="cpu")
        except FileNotFoundError as e:
            raise ExportError(str(e)) from None
        except ValueError as e:
            raise ExportError(f"{ckpt}: {e}" if str(ckpt) not in str(e) else str(e)) from None
        source = str(ckpt)
        if size is None:
            from .predict import checkpoint_info  # the one place that knows where a checkpoint records its size

            size = checkpoint_info(state, cfg)["size"]
            if size is None:
                raise ExportError(f"{ckpt}: the checkpoint does not record its crop size and its training folder "
                                  f"({cfg.data.train!r}) is not here; pass size (--size, e.g. 64 or 128)")
    else:
        raise ExportError(f"export_onnx: expected a Detector or a checkpoint path, got {type(model_or_checkpoint).__name__}")
    size = int(size)
    k = 2 ** len(det.stages)
    if size < k or size % k != 0:
        raise ExportError(f"{source}: size {size} must be a positive multiple of {k} (2^num_stages)")
    if source == "model object":           # leave the caller's model where and how it was (device, train mode)
        det = copy.deepcopy(det)
    return det.cpu().eval(), size, source


def export_onnx(model_or_checkpoint, path: str | os.PathLike, *, size: int | None = None, opset: int = 17,
                dynamic_batch: bool = True, batch_size: int = 1, overwrite: bool = False,
                check: bool = True) -> Path:
    """Export the detector to an ONNX file; returns its path.

    model_or_checkpoint: a :class:`Detector` or a maskpose checkpoint path (``maskpose.train.load_model``).
    size: crop size S (default: from the checkpoint's training folder; required for a model object).
    opset: ONNX opset (17 default; ≥ 13). dynamic_batch: batch axis ``batch`` is dynamic; otherwise
    the graph is fixed to ``batch_size``. overwrite: replace an existing file. check: run one random
    batch through onnxruntime and torch and raise :class:`ExportError` if any output differs by > 1e-3.
    Written atomically (temporary file + ``os.replace``).
    """
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name ending in .onnx")
    if path.exists() and not overwrite:
        raise ExportError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    if not dynamic_batch and int(batch_size) < 1:
        raise ExportError(f"batch_size must be >= 1 for a fixed-batch export, got {batch_size}")
    if int(opset) < 13:
        raise ExportError(f"opset {opset} is too old; use 13 or newer (17 is the default)")
    det, size, source = resolve_detector(model_or_checkpoint, size)
    wrapper = DetectorOutputs(det).eval()
    b = 2 if dynamic_batch else int(batch_size)
    example = torch.rand(b, det.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with warnings.catch_warnings(), torch.no_grad(), constant_template_prior(det, size):
            warnings.simplefilter("ignore")       # legacy-exporter deprecation and tracer notices
            kwargs = dict(input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), opset_version=int(opset),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
            try:
                torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, **kwargs)
            except TypeError as e:            # torch < 2.5 has no `dynamo` argument (and only this exporter)
                if "dynamo" not in str(e):
                    raise
                torch.onnx.export(wrapper, (example,), str(tmp), **kwargs)
        _add_metadata(tmp, det, size, source)
        if check:
            _check_parity(tmp, wrapper, example, source)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _add_metadata(path: Path, det: Detector, size: int, source: str) -> None:
    import onnx

    from . import __version__

    model = onnx.load(str(path))
    props = {
        "maskpose_format": ONNX_FORMAT, "maskpose_version": __version__,
        "input_mode": det.config.input, "in_channels": str(det.in_channels), "size": str(size),
        "joint_set": det.joint_set.name, "joint_names": json.dumps(list(det.joint_set.joints)),
        "outputs": json.dumps(list(OUTPUT_NAMES)), "source": source,
    }
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.doc_string = ("maskpose pose detector: images [B, C, S, S] -> joints2d [B, J, 2] (normalised crop "
                        "coordinates), depth [B, J] (root-relative, [-1, 1]), confidence [B, J], girth [B]")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _check_parity(path: Path, wrapper: nn.Module, example: torch.Tensor, source: str, tol: float = 1e-3) -> None:
    runner = OnnxDetector(path)
    with torch.no_grad():
        ref = wrapper(example)
    out = runner(example.numpy())
    for name, r in zip(OUTPUT_NAMES, ref):
        diff = float(np.abs(out[name] - r.numpy()).max())
        if not diff <= tol:
            raise ExportError(f"{source}: ONNX output {name!r} differs from torch by {diff:.2e} (> {tol:g})")


# ====================================================================== runtime
class OnnxDetector:
    """The exported detector on onnxruntime, numpy in and out.

    ``OnnxDetector(path)(images [B, C, S, S] float32) -> {"joints2d": [B,J,2], "depth": [B,J],
    "confidence": [B,J], "girth": [B]}`` — the same keys and meaning as the torch detector's outputs.
    A graph exported with a fixed batch is run in chunks of that size (the last chunk padded).

    threads: intra-op threads (None: onnxruntime's default, one per core).
    spin: let idle worker threads spin-wait between calls (onnxruntime's default). Off by default:
        spinning threads keep the cores busy after each call, which slows everything else the
        process does between calls (video decoding, torch) and other processes on a shared machine.
    providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    Attributes from the file's metadata: ``size``, ``in_channels``, ``input_mode``, ``joint_names``,
    ``joint_set``, ``batch_size`` (None when dynamic).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, spin: bool = False,
                 providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: no such ONNX file")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ExportError(f"{self.path}: onnxruntime cannot load it ({type(e).__name__}: {e})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise ExportError(f"{self.path}: expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}")
        names = [o.name for o in self.session.get_outputs()]
        missing = [n for n in OUTPUT_NAMES if n not in names]
        if missing:
            raise ExportError(f"{self.path}: not a maskpose detector (outputs {missing} missing)")
        shape = inputs[0].shape                      # [B or 'batch', C, S, S]
        self.batch_size = shape[0] if isinstance(shape[0], int) else None
        self.in_channels = int(shape[1])
        self.size = int(shape[2])
        self.input_mode = meta.get("input_mode")
        self.joint_set = meta.get("joint_set")
        self.joint_names = json.loads(meta["joint_names"]) if "joint_names" in meta else None
        self.metadata = dict(meta)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, self.size, self.size):
            raise ExportError(f"{self.path}: expected images [B, {self.in_channels}, {self.size}, {self.size}], "
                              f"got {list(x.shape)}")
        if self.batch_size is None or x.shape[0] == self.batch_size:
            outs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
            return dict(zip(OUTPUT_NAMES, outs))
        n, k = x.shape[0], self.batch_size
        parts: list[list[np.ndarray]] = [[] for _ in OUTPUT_NAMES]
        for s in range(0, n, k):
            chunk = x[s:s + k]
            m = chunk.shape[0]
            if m < k:
                chunk = np.concatenate([chunk, np.zeros((k - m,) + chunk.shape[1:], np.float32)])
            for i, o in enumerate(self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: chunk})):
                parts[i].append(o[:m])
        return {name: np.concatenate(p) if p else np.zeros((0,)) for name, p in zip(OUTPUT_NAMES, parts)}
