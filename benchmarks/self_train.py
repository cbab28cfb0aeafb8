"""One timed round of label-free self-training on a trained model, end to end.

    python benchmarks/self_train.py CHECKPOINT --data DIR --train-samples N --out RUN
        [--label 1000] [--procs 2] [--steps 2000] [--lr 3e-4] [--json FILE] [overrides...]

1. pseudo-labels: the model's answers on the first ``--label`` training samples (``DIR/train``), refined by
   ``maskpose fit`` with the arm search (:func:`maskpose.selftrain.pseudo_label`, as ``maskpose selftrain``),
   split over ``--procs`` one-thread processes and merged into ``RUN/pseudo.npz``;
2. a fine-tune of ``--steps`` steps from CHECKPOINT with every joint also pulled to its pseudo-label
   (``benchmarks/train_synthetic.py ... init=CHECKPOINT data.pseudo=RUN/pseudo.npz loss.pseudo=1``), evaluated
   on ``DIR/test`` beside the label-using baselines;
3. optionally (``--fit-test``) ``maskpose fit`` on the test split (``benchmarks/arm_search.py --only-last``).

Prints and writes (``--json``) the wall-clock of every stage, so "training + labelling + fine-tune" can be
compared with a budget. No label is read by any stage except to score (gt/ of the test split, and of the
training split only to report the pseudo-labels' error).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from maskpose.selftrain import pseudo_label

HERE = Path(__file__).resolve().parent


def run(cmd: list[str], log: Path, threads: int | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


def wait_all(procs: list[subprocess.Popen], what: str) -> None:
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"{what} failed (exit codes {codes}); see the logs")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="folder with train/ and test/ (train_synthetic.py --data)")
    ap.add_argument("--train-samples", type=int, required=True, help="size of DIR/train (as in train_synthetic.py)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--label", type=int, default=1000, help="pseudo-label the first N training samples")
    ap.add_argument("--procs", type=int, default=2, help="one-thread labelling processes")
    ap.add_argument("--label-cycles", type=int, default=2, help="(arm search, fit) cycles of the labels")
    ap.add_argument("--label-iters", type=int, default=100,
                    help="fit steps per cycle; 0 (with --label-cycles 1): labels from the arm search alone")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--fit-test", action="store_true", help="also run maskpose fit on the test split")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        sys.exit(f"{args.checkpoint}: no such checkpoint")
    for split in ("train", "test"):
        if not (args.data / split / "meta.json").is_file():
            sys.exit(f"{args.data / split}: not a dataset folder (meta.json missing)")
    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    times: dict[str, float] = {}

    t0 = time.time()
    pseudo = args.out / "pseudo.npz"
    n_lab = pseudo_label(args.checkpoint, args.data / "train", pseudo, num=args.label, workers=args.procs,
                         cycles=args.label_cycles, iters=args.label_iters)
    times["label_minutes"] = (time.time() - t0) / 60
    print(f"pseudo-labels for {n_lab} samples in {times['label_minutes']:.1f} min -> {pseudo}", flush=True)

    t1 = time.time()
    ft_json = args.out / "finetune.json"
    cmd = [py, str(HERE / "train_synthetic.py"), "--minutes", "0", "--train-samples", str(args.train_samples),
           "--data", str(args.data), "--out", str(args.out / "ft"), "--eval-every", str(args.eval_every),
           "--json", str(ft_json), f"init={args.checkpoint}", f"optim.lr={args.lr}", f"optim.steps={args.steps}",
           "loss.extremity_exclude_body_from=0", f"data.pseudo={pseudo}", "loss.pseudo=1", *args.overrides]
    wait_all([run(cmd, args.out / "finetune.log")], "fine-tune")
    times["finetune_minutes"] = (time.time() - t1) / 60
    print(f"fine-tune of {args.steps} steps in {times['finetune_minutes']:.1f} min -> {args.out / 'ft'}", flush=True)
    result = {"checkpoint": str(args.out / "ft" / "checkpoint.pt"), "labelled": n_lab, "times": times,
              "network": json.loads(ft_json.read_text())["model"]}

    if args.fit_test:
        t2 = time.time()
        fit_json = args.out / "fit_test.json"
        wait_all([run([py, str(HERE / "arm_search.py"), result["checkpoint"], str(args.data / "test"), "--limit", "200",
                       "--fit", "100", "--cycles", "2", "--only-last", "--json", str(fit_json)],
                      args.out / "fit_test.log")], "fit on the test split")
        times["fit_test_minutes"] = (time.time() - t2) / 60
        result["fit"] = json.loads(fit_json.read_text())
    m = result["network"]
    print(f"self-trained network: MPJPE {m['mpjpe']:.1f}  P-MPJPE {m['p_mpjpe']:.1f}  wrists {m['wrist']:.1f}  "
          f"flip share {m['flip_share']:.3f}")
    print("stage minutes:", {k: round(v, 1) for k, v in times.items()})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
