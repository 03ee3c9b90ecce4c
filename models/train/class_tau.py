#!/usr/bin/env python3
"""How the class head's logit adjustment trades accuracy for `hit` recall, per tau.

Loads the fine-tuned weights of a finished `make_model.py` run (WORK/impact-s1-qat.pt, or
WORK/impact-s1.pt when it ran without fine-tuning), rebuilds its validation split (the same
seeded draw as make_model.py) and prints, for each tau, what train.adjust_class_logits would
make of the class head on the validation scenes' visible impacts: accuracy, balanced accuracy
(mean per-class recall) and the recall of each class. make_model.py uses `--class-tau`
(default 1, the value the method's derivation gives for balanced error); this is how to check
that choice on a new run without touching the test set.

Usage (from the repository root, in the training venv):
    python models/train/class_tau.py --work /tmp/impact-s1 [--taus 0,0.5,1,1.5,2]
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_model as mm  # noqa: E402
import train as tr  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=pathlib.Path, required=True, help="make_model.py's --work")
    ap.add_argument("--taus", default="0,0.5,1,1.5,2")
    ap.add_argument("--train-count", type=int, default=3000, help="as given to make_model.py")
    ap.add_argument("--seed", type=int, default=0, help="as given to make_model.py")
    a = ap.parse_args(argv)
    taus = [float(t) for t in a.taus.split(",")]
    weights = next((p for p in (a.work / f"{mm.NAME}-qat.pt", a.work / f"{mm.NAME}.pt") if p.is_file()), None)
    if weights is None:
        raise SystemExit(f"{a.work}: no {mm.NAME}-qat.pt or {mm.NAME}.pt (run make_model.py first)")
    paths = sorted((a.work / "synth" / "train").glob("*.json"))[: a.train_count]
    if not paths:
        raise SystemExit(f"{a.work}/synth/train: no scenes")
    order, n_val = mm.validation_split(len(paths), a.seed)
    prior = tr.class_prior([json.loads(paths[i].read_text()) for i in order[n_val:]])
    info = mm.train_info(a.work)
    tr.set_input_size(info["input"])  # before the scenes load: they are scaled to it
    val = [tr.load_scene(paths[i]) for i in order[:n_val]]
    net = tr.ImpactNet(lookahead=info["lookahead"], width=info["width"])
    net.load_state_dict(torch.load(weights))
    print(f"{weights}; training impacts: "
          + ", ".join(f"{k} {100 * v:.1f} %" for k, v in zip(tr.CLASSES, prior)) + "\n")
    print("| tau | accuracy | balanced accuracy | " + " | ".join(f"{k} recall" for k in tr.CLASSES) + " |")
    print("|---|---|---|" + "---|" * len(tr.CLASSES))
    for tau in taus:
        n = copy.deepcopy(net)
        tr.adjust_class_logits(n, prior, tau)
        r = tr.class_recall(n, val)
        print(f"| {tau:g} | {r['accuracy']:.3f} | {r['balanced']:.3f} | "
              + " | ".join(f"{r['recall'][k]:.3f}" for k in tr.CLASSES) + " |")
    print(f"\n({r['impacts']} visible impacts in {len(val)} validation scenes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
