"""The label-free recipe inside a wall-clock budget, end to end and timed: train, then self-train in rounds.

    python benchmarks/budget_pipeline.py --data DIR --out RUN [--train-samples 12000] [--base-steps 6000]
        [--rounds 5] [--label 1000 | --label 1000,1000,1500,1500] [--window 1] [--iters 50] [--steps 1500]
        [--share 0.5] [--pull-rounds 2] [--base-eval-every 3000] [--ft-eval-every 2000] [--seed 0]
        [--budget 60] [--json FILE] [base overrides...]

Measured on one 2-core VM with nothing else running (``docs/results/training-notes.md``, sessions 12-14):
session 12's recipe (the hand pull on in every round) gave the fourth round's checkpoint at 59.0 minutes,
79.4 / 75.2 mm strict MPJPE / P-MPJPE and wrists 202.8 mm on the 200 test samples; session 13's recipe
(the pull off from round 3, ``--pull-rounds 2``, 2000-step fine-tunes): 65.4 minutes, wrists 188.1, on a
slower host; session 14's defaults (1500-step fine-tunes): see ``docs/results/session14/``; session 15 (up to
5 rounds, the budget): ``docs/results/session15/``. Nothing else may
run on the machine meanwhile: tests beside the base training doubled its step time, and the host's own speed
moved by ~20 % between runs (the same base: 16.7, 17.6 and 20.4 min).

1. ``benchmarks/train_synthetic.py`` trains the detector label-free for ``--base-steps`` steps with the recipe
   of session 11: 32 x 32 heatmaps (``model.heatmap_stride=2``), no fade of the hand pull
   (``loss.extremity_decay_start=-1``), the body-capsule exclusion of the pull from half-way
   (``loss.extremity_exclude_body_from``), plus any overrides given;
2. ``maskpose selftrain --rounds N``: each round labels the first ``--label`` training masks (``--window``:
   a new slice each round) with ``fit`` + arm search of the previous model (``--iters`` fit steps per cycle)
   and fine-tunes ``--steps`` steps with ``--share`` of each batch from the labelled samples; the first
   ``--pull-rounds`` rounds keep the hand pull on their unlabelled samples, later rounds do without it
   (``--ft-eval-every``: the fine-tunes' evaluation interval; each also evaluates once at its end);
   ``--budget M`` (minutes from the start, default 60; 0: none) is passed on as ``selftrain --max-minutes``
   (what is left of it after the base): no round is started that the last round's duration says would end
   past it, so ``--rounds`` is an upper bound and the number run follows the host's speed;
3. ``maskpose eval`` of every round's checkpoint on ``DIR/test`` (strict / flip-aware metrics, per joint,
   per activity, beside the label-using baselines), and of the last one with ``--no-selection``.

Prints and writes (``--json``) each stage's wall-clock and the cumulative minutes from the start, so the
result can be read against a budget (issue 8: 60 minutes on the 2-core machine), and names the last model
ready within ``--budget`` (``budget_model``). Labels are read only to score (``gt/`` of the test split).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def stage(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` with its output in ``log``; returns its wall-clock minutes (exits on failure)."""
    t = time.time()
    with open(log, "w") as f:
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if code:
        sys.exit(f"{' '.join(cmd[:3])} ... failed (exit code {code}); see {log}")
    return (time.time() - t) / 60


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with train/ and test/ (made if missing)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train-samples", type=int, default=12000)
    ap.add_argument("--base-steps", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--label", default="1000", help="samples labelled per round, or one count per round: 1000,1000,1500,1500")
    ap.add_argument("--iters", type=int, default=50, help="fit steps per cycle of the labels")
    ap.add_argument("--window", type=int, default=1,
                    help="K: each round labels a new slice and trains on the labels of the last K rounds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1500, help="fine-tune steps per round")
    ap.add_argument("--share", type=float, default=0.5)
    ap.add_argument("--pull-rounds", type=int, default=2,
                    help="the first N rounds keep the hand pull on their unlabelled samples, later ones do without")
    ap.add_argument("--base-eval-every", type=int, default=3000, help="evaluation interval of the base training")
    ap.add_argument("--ft-eval-every", type=int, default=2000, help="evaluation interval of the fine-tunes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=60.0,
                    help="wall-clock minutes from the start: no round is started that would end past it (0: none)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("overrides", nargs="*", help="dotted overrides of the base training")
    args = ap.parse_args(argv)
    if args.base_steps < 1 or args.rounds < 0 or args.budget < 0:
        sys.exit("--base-steps must be >= 1, --rounds >= 0 and --budget >= 0")
    args.out.mkdir(parents=True, exist_ok=True)
    py, mp = sys.executable, [sys.executable, "-m", "maskpose"]
    t0 = time.time()
    times: dict[str, float] = {}
    base = args.out / "base"
    times["base"] = stage([py, str(HERE / "train_synthetic.py"), "--minutes", "0", "--train-samples",
                           str(args.train_samples), "--data", str(args.data), "--out", str(base),
                           "--eval-every", str(args.base_eval_every), "--json", str(args.out / "base.json"),
                           f"seed={args.seed}", f"optim.steps={args.base_steps}", "model.heatmap_stride=2",
                           "loss.extremity_decay_start=-1",
                           f"loss.extremity_exclude_body_from={args.base_steps // 2}", "log.progress=false",
                           *args.overrides], args.out / "base.log")
    print(f"base training: {times['base']:.1f} min", flush=True)
    ckpts = [("base", base / "checkpoint.pt")]
    if args.rounds:
        # what is left of the budget (a round always runs, even when the base used it all)
        left = max(args.budget - (time.time() - t0) / 60, 1e-3) if args.budget > 0 else 0.0
        times["selftrain"] = stage([*mp, "selftrain", str(base / "checkpoint.pt"), "--out", str(args.out / "st"),
                                    "--rounds", str(args.rounds), "--label", str(args.label), "--window",
                                    str(args.window), "--iters",
                                    str(args.iters), "--workers", str(args.workers), "--steps", str(args.steps),
                                    "--share", str(args.share), "log.progress=false",
                                    "--pull-rounds", str(args.pull_rounds), f"data.test={args.data / 'test'}",
                                    f"log.eval_every={args.ft_eval_every}", "--max-minutes", f"{left:.3f}"],
                                   args.out / "selftrain.log")
        print(f"{args.rounds} self-training round(s): {times['selftrain']:.1f} min", flush=True)
        st = args.out / "st"
        # the rounds the budget let run (a checkpoint left in OUT by an earlier invocation is older than t0)
        ckpts += [(f"round{r}", ck) for r in range(1, args.rounds + 1)
                  if (ck := (st if args.rounds == 1 else st / f"round{r}") / "checkpoint.pt").is_file()
                  and ck.stat().st_mtime >= t0]
    # the cumulative wall-clock at which each model was ready (checkpoint written)
    result: dict = {"times_minutes": times, "machine": None, "models": {}, "budget_minutes": args.budget,
                    "budget_model": None}
    for name, ck in ckpts:
        ej = args.out / f"eval_{name}.json"
        stage([*mp, "eval", str(ck), str(args.data / "test"), "--json", str(ej)], args.out / f"eval_{name}.log")
        m = json.loads(ej.read_text())
        m["ready_minutes"] = (ck.stat().st_mtime - t0) / 60
        result["models"][name] = m
        if args.budget <= 0 or m["ready_minutes"] <= args.budget:
            result["budget_model"] = name
    name, ck = ckpts[-1]
    ej = args.out / f"eval_{name}_selection_off.json"
    stage([*mp, "eval", str(ck), str(args.data / "test"), "--no-selection", "--json", str(ej)],
          args.out / f"eval_{name}_selection_off.log")
    result["selection_off"] = json.loads(ej.read_text())["model"]
    base_json = json.loads((args.out / "base.json").read_text())
    result["machine"] = base_json.get("machine")
    result["oracle_yaw_mean_pose"] = base_json.get("oracle_yaw_mean_pose")
    print(f"{'model':>8} {'ready min':>9} {'MPJPE':>7} {'P-MPJPE':>8} {'wrists':>7} {'flip':>6}")
    for name, m in result["models"].items():
        net = m.get("model", m)
        print(f"{name:>8} {m['ready_minutes']:9.1f} {net['mpjpe']:7.1f} {net['p_mpjpe']:8.1f} "
              f"{net.get('wrist', float('nan')):7.1f} {net.get('flip_share', float('nan')):6.3f}")
    if args.budget > 0:
        print(f"the last model ready within {args.budget:g} min: {result['budget_model']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
