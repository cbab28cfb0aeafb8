"""Side-by-side tables (overall, per joint group, per activity) of several train_synthetic.py runs.

    python benchmarks/ablation_table.py NAME=RUN.json NAME=RUN.json ... [--markdown FILE]

Each RUN.json is the ``--json`` output of ``benchmarks/train_synthetic.py``; the runs should share
the data, the step budget and the seed (the table prints each run's overrides so that this can be
checked). Numbers are strict (not flip-aware) root-aligned MPJPE unless named otherwise, in mm.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GROUPS = {
    "hips": ("RHip", "LHip"),
    "knees": ("RKnee", "LKnee"),
    "ankles": ("RAnkle", "LAnkle"),
    "spine/neck/thorax": ("spine", "neck", "thorax"),
    "nose/head": ("nose", "head"),
    "shoulders": ("LShoulder", "RShoulder"),
    "elbows": ("LElbow", "RElbow"),
    "wrists": ("LWrist", "RWrist"),
}


def _row(name: str, cells) -> str:
    return "| " + " | ".join([name] + [c if isinstance(c, str) else f"{c:.1f}" for c in cells]) + " |"


def tables(runs: dict[str, dict]) -> str:
    names = list(runs)
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
    out = ["**Overall** (200 test samples)", "", head]
    m = {n: r["model"] for n, r in runs.items()}
    for key, label in (("mpjpe", "MPJPE strict"), ("p_mpjpe", "P-MPJPE strict"), ("mpjpe_flip", "MPJPE flip-aware"),
                       ("p_mpjpe_flip", "P-MPJPE flip-aware"), ("pck", "PCK@150 (%)"), ("auc", "AUC (%)")):
        scale = 100.0 if key in ("pck", "auc") else 1.0
        out.append(_row(label, [scale * m[n][key] for n in names]))
    out.append(_row("flip share", [f"{m[n]['flip_share']:.3f}" for n in names]))
    out.append(_row("ambiguity ratio", [f"{m[n]['ambiguity_ratio']:.3f}" for n in names]))
    out.append(_row("steps", [str(int(runs[n]["history"][-1]["step"])) if runs[n].get("history") else "?" for n in names]))
    out += ["", "**Per joint group** (strict MPJPE)", "", head]
    for g, joints in GROUPS.items():
        out.append(_row(g, [sum(m[n]["per_joint_mpjpe"][j] for j in joints) / len(joints) for n in names]))
    acts = sorted(next(iter(m.values()))["per_activity"])
    out += ["", "**Per activity** (strict MPJPE / P-MPJPE)", "", head]
    for a in acts:
        out.append(_row(a, [f"{m[n]['per_activity'][a]['mpjpe']:.1f} / {m[n]['per_activity'][a]['p_mpjpe']:.1f}"
                            for n in names]))
    out += ["", "Overrides: " + "; ".join(f"{n}: `{' '.join(runs[n].get('overrides', []))}`" for n in names)]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="NAME=FILE.json")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)
    runs = {}
    for item in args.runs:
        if "=" not in item:
            ap.error(f"{item!r}: expected NAME=FILE.json")
        name, path = item.split("=", 1)
        try:
            runs[name] = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            ap.error(f"{path}: cannot read a train_synthetic.py result: {e}")
        if "model" not in runs[name]:
            ap.error(f"{path}: not a train_synthetic.py --json result (no 'model' section)")
    text = tables(runs)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
