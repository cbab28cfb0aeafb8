"""Speed and memory of the fast segment renderer against its dense reference.

Measures forward + backward of ``render_segments`` (fast, tiled) and ``render_segments_dense``
(reference, all ``B x E x S x S``) followed by an L2 loss against a random binary mask:

* Gaussian profile (the authors' skeleton mask), max merge: B = 32, 18 segments, 64/128/256 px;
* capsule profile (the body mask), soft union: B = 32, 30 segments, 64/128 px.

Segments are random but body-like: centres in [-0.6, 0.6]^2, lengths 0.1-0.45 normalised units
(a human spans ~1.6 units of a crop), Gaussian widths 0.003 (4 "arm" segments 0.0015), capsule radii
0.03-0.14 with 3 spheres (a == b), tau = 0.5 px.

Memory: every configuration runs in a fresh subprocess. Peak memory is the process's peak resident
set size during one forward + backward, minus its resident set size just before (after imports and
inputs). The peak is read from ``VmHWM`` after resetting it with ``/proc/self/clear_refs`` (Linux
>= 4.0), so earlier transients (imports) do not hide it; where that is not possible it falls back to
``ru_maxrss`` of the fresh process, measured on the first call. Time: median of ``--repeats`` calls
after one warm-up call (which is the memory call). Before the memory call the worker runs one
call at 16 px so that library code pages touched on first use (which also count in RSS) are not
charged to the configuration. ``(cpu x)`` is the speed ratio in process CPU time.

The fast path runs ~60 small tensor operations per chunk of ~1e5 pixel evaluations. On a machine
whose cores are also busy with other processes, every multi-threaded operation waits for a
descheduled thread, which hurts many small operations far more than the dense path's few big ones
(seen here: 20 ms -> 1 s for the fast path at 64 px with 2 threads while another process used a
core). Measure on an idle machine, or with ``--threads 1``, and compare the ``(cpu x)`` column.

Usage::

    python benchmarks/render.py                 # full table (~1-2 minutes on an idle 2-core machine)
    python benchmarks/render.py --threads 1 --sizes 64 128 --capsule-sizes 64
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


# ---------------------------------------------------------------------------- memory probes
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the peak RSS (VmHWM) of this process; False if the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, kB on Linux


# ---------------------------------------------------------------------------- worker
def _inputs(kind: str, batch: int, nseg: int, size: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, nseg, 2, generator=g) * 1.2 - 0.6
    angle = torch.rand(batch, nseg, generator=g) * 6.2832
    length = torch.rand(batch, nseg, generator=g) * 0.35 + 0.1
    half = 0.5 * length[..., None] * torch.stack([angle.cos(), angle.sin()], -1)
    if kind == "gaussian":
        width = torch.full((batch, nseg), 0.003)
        width[:, :4] = 0.0015  # thin "arm" lines
    else:
        width = torch.rand(batch, nseg, generator=g) * 0.11 + 0.03
        half[:, :3] = 0.0  # head sphere and ankle blobs
    a, b = centre - half, centre + half
    target = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    return a, b, width, target


def worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from maskpose.render import render_segments, render_segments_dense

    kind, impl, size = spec["profile"], spec["impl"], spec["size"]
    merge = "max" if kind == "gaussian" else "soft_union"
    a, b, width, target = _inputs(kind, spec["batch"], spec["segments"], size)
    kw = dict(profile=kind, merge=merge, tau=0.5)
    if impl == "fast":
        fn = render_segments
        if spec.get("tile"):
            kw["tile"] = spec["tile"]
        if spec.get("chunk"):
            kw["chunk"] = spec["chunk"]
    else:
        fn = render_segments_dense

    def step(sz=size, tgt=target):
        aa, bb, ww = (x.clone().requires_grad_() for x in (a, b, width))
        out = fn(aa, bb, ww, sz, **kw)
        loss = ((out - tgt) ** 2).mean()
        loss.backward()
        return aa.grad.sum().item()

    # touch the code paths once at a tiny size (library code pages count in RSS, tensors barely)
    step(16, target[..., :16, :16])
    base_kb = _status_kb("VmRSS")
    if _reset_peak() and base_kb is not None:
        step()
        peak_kb, method = _status_kb("VmHWM"), "VmHWM"
    else:
        base_kb = _maxrss_kb()
        step()
        peak_kb, method = _maxrss_kb(), "ru_maxrss"
    times, cpu = [], []
    for _ in range(spec["repeats"]):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"ms": 1e3 * statistics.median(times), "cpu_ms": 1e3 * statistics.median(cpu),
            "mb": max(0, peak_kb - base_kb) / 1024.0, "mem_method": method}


# ---------------------------------------------------------------------------- driver
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run(spec: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per configuration (median)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256], help="Gaussian sizes (px)")
    ap.add_argument("--capsule-sizes", type=int, nargs="*", default=[64, 128], help="capsule sizes (px)")
    ap.add_argument("--bones", type=int, default=18, help="Gaussian segments per image")
    ap.add_argument("--capsules", type=int, default=30, help="capsule segments per image")
    ap.add_argument("--tile", type=int, default=None, help="fast path tile side (default: the library's)")
    ap.add_argument("--chunk", type=int, default=None, help="fast path chunk (default: the library's)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import torch

    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"torch {torch.__version__}, threads {args.threads}, python {platform.python_version()}")
    print(f"B = {args.batch}; forward + backward of render + L2 loss; median of {args.repeats} calls; "
          f"memory = peak RSS increase in a fresh process")
    header = (f"{'profile / merge':<22}{'E':>4}{'px':>6}{'fast ms':>10}{'dense ms':>10}{'speed x':>9}"
              f"{'(cpu x)':>9}{'fast MB':>9}{'dense MB':>10}{'mem x':>8}")
    print(header)
    print("-" * len(header))
    t_start = time.perf_counter()
    configs = [("gaussian", args.bones, s) for s in args.sizes] + [("capsule", args.capsules, s) for s in args.capsule_sizes]
    method = set()
    for kind, nseg, size in configs:
        res = {}
        for impl in ("fast", "dense"):
            spec = dict(profile=kind, impl=impl, size=size, batch=args.batch, segments=nseg,
                        threads=args.threads, repeats=args.repeats, tile=args.tile, chunk=args.chunk)
            res[impl] = _run(spec)
            method.add(res[impl]["mem_method"])
        f, d = res["fast"], res["dense"]
        label = f"{kind} / {'max' if kind == 'gaussian' else 'soft_union'}"
        print(f"{label:<22}{nseg:>4}{size:>6}{f['ms']:>10.1f}{d['ms']:>10.1f}{d['ms'] / f['ms']:>9.1f}"
              f"{d['cpu_ms'] / f['cpu_ms']:>9.1f}{f['mb']:>9.1f}{d['mb']:>10.1f}{d['mb'] / max(f['mb'], 0.1):>8.1f}",
              flush=True)
    print(f"speed x = dense / fast wall-clock median; (cpu x) = the same for process CPU time, which other\n"
          f"processes on a shared machine disturb less. Peak memory via {', '.join(sorted(method))}; "
          f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
