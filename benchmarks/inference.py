"""Detector inference speed on CPU: PyTorch (eval, no_grad) against onnxruntime, in crops per second.

The detector is the default model of ``src/maskpose/configs/synthetic.yaml`` (its ``model`` section
over the ``DetectorConfig`` defaults), randomly initialised (the speed does not depend on the
weights). For each crop size it exports the detector to ONNX (``maskpose.export_onnx``), then times
``batch`` crops at a time through both runtimes on random inputs: two warm-up calls, then calls
until ``--min-time`` seconds have passed (at least ``--min-calls``). Each runtime and size runs in a
fresh process: an idle onnxruntime (or OpenMP) thread pool spins after each call and, on a small
machine, steals the cores from the other runtime (seen: torch at batch 1 went from 5 ms to 420 ms). crops/s = crops / wall time;
``ms/batch`` is the median call.

Both runtimes use ``--threads`` intra-op threads (default: the cores this process may use). The
machine's load average is recorded before and after: on a shared machine other processes take cores
and the numbers drop, so compare runs only at similar load.

Usage::

    python benchmarks/inference.py                          # 64 and 128 px, batches 1/8/32/64
    python benchmarks/inference.py --sizes 64 --batches 1 32 --json docs/results/inference.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from maskpose.export_onnx import OnnxDetector, export_onnx  # noqa: E402
from maskpose.models.detector import Detector, DetectorConfig  # noqa: E402


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_config(path: Path = ROOT / "src/maskpose/configs/synthetic.yaml") -> DetectorConfig:
    """``DetectorConfig`` from the config file's ``model`` section (and its ``joint_set``)."""
    doc = yaml.safe_load(path.read_text())
    known = {f.name for f in fields(DetectorConfig)}
    model = {k: v for k, v in (doc.get("model") or {}).items() if k in known}
    if "joint_set" in doc:
        model.setdefault("joint_set", doc["joint_set"])
    return DetectorConfig(**model)


def time_calls(fn, min_time: float, min_calls: int) -> list[float]:
    """Seconds per call: two warm-up calls, then calls until ``min_time`` s and ``min_calls`` calls."""
    fn()
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _worker(backend: str, cfg: DetectorConfig, size: int, batches: list[int], threads: int, min_time: float,
            min_calls: int, onnx_path: str | None, spin: bool = False) -> list[dict]:
    """Time one runtime at one size (runs in its own process: the other runtime's idle thread pool,
    which spins after each call, would otherwise steal the cores)."""
    torch.set_num_threads(threads)
    out = []
    if backend == "torch":
        torch.manual_seed(0)
        model = Detector(cfg).eval()
    else:
        runner = OnnxDetector(onnx_path, threads=threads, spin=spin)
    for b in batches:
        x = torch.rand(b, cfg.in_channels, size, size, generator=torch.Generator().manual_seed(b))
        if backend == "torch":
            def fn():
                with torch.no_grad():
                    model(x)
        else:
            xn = x.numpy()

            def fn():
                runner(xn)
        ts = time_calls(fn, min_time, min_calls)
        out.append({"size": size, "batch": b, "crops_per_s": b * len(ts) / sum(ts),
                    "ms_per_batch": 1e3 * statistics.median(ts), "calls": len(ts)})
    return out


def bench(cfg: DetectorConfig, sizes: list[int], batches: list[int], threads: int,
          min_time: float, min_calls: int, config_path: Path, spin: bool = False) -> list[dict]:
    """Rows ``{size, batch, torch: {...}, onnxruntime: {...}}``; each runtime and size in a fresh process."""
    import subprocess

    torch.manual_seed(0)
    model = Detector(cfg).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            onnx_path = export_onnx(model, Path(tmp) / f"detector_{size}.onnx", size=size)
            res = {}
            for backend in ("torch", "onnxruntime"):
                cmd = [sys.executable, __file__, "--worker", backend, "--sizes", str(size), "--batches",
                       *map(str, batches), "--threads", str(threads), "--min-time", str(min_time),
                       "--min-calls", str(min_calls), "--config", str(config_path), "--onnx", str(onnx_path)]
                cmd += ["--spin"] if spin else []
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise RuntimeError(f"{backend} worker failed:\n{proc.stderr}")
                res[backend] = {r["batch"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}
            for b in batches:
                row = {"size": size, "batch": b,
                       **{k: {kk: v[b][kk] for kk in ("crops_per_s", "ms_per_batch", "calls")} for k, v in res.items()}}
                rows.append(row)
                print(f"  {size:4d} px  B={b:3d}  torch {row['torch']['crops_per_s']:8.1f} crops/s   "
                      f"onnxruntime {row['onnxruntime']['crops_per_s']:8.1f} crops/s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--threads", type=int, default=available_cores(), help="intra-op threads (default: cores)")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per cell")
    ap.add_argument("--min-calls", type=int, default=3)
    ap.add_argument("--config", type=Path, default=ROOT / "src/maskpose/configs/synthetic.yaml")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--spin", action="store_true", help="onnxruntime threads spin-wait between calls")
    ap.add_argument("--worker", choices=["torch", "onnxruntime"], help=argparse.SUPPRESS)
    ap.add_argument("--onnx", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    cfg = default_config(args.config)
    if args.worker:
        rows = _worker(args.worker, cfg, args.sizes[0], args.batches, args.threads, args.min_time,
                       args.min_calls, args.onnx, args.spin)
        print(json.dumps(rows))
        return {"results": rows}
    load_before = os.getloadavg()
    env = {"cpu": cpu_name(), "cores": available_cores(), "threads": args.threads, "platform": platform.platform(),
           "python": platform.python_version(), "torch": torch.__version__,
           "onnxruntime": __import__("onnxruntime").__version__, "ort_spin": args.spin,
           "load_avg_before": load_before}
    n_params = Detector(cfg).num_parameters()
    print(f"CPU: {env['cpu']} ({env['cores']} cores usable, {args.threads} threads); "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"detector: {asdict(cfg)} ({n_params / 1e6:.2f} M parameters)")
    rows = bench(cfg, args.sizes, args.batches, args.threads, args.min_time, args.min_calls, args.config,
                 args.spin)
    env["load_avg_after"] = os.getloadavg()

    print()
    print("| px | batch | torch crops/s | torch ms/batch | onnxruntime crops/s | onnxruntime ms/batch | ort / torch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        t, o = r["torch"], r["onnxruntime"]
        print(f"| {r['size']} | {r['batch']} | {t['crops_per_s']:.1f} | {t['ms_per_batch']:.2f} | "
              f"{o['crops_per_s']:.1f} | {o['ms_per_batch']:.2f} | {o['crops_per_s'] / t['crops_per_s']:.2f}x |")
    la = env["load_avg_after"]
    print(f"\nload average after: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    result = {"env": env, "config": asdict(cfg), "parameters": n_params, "results": rows}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
