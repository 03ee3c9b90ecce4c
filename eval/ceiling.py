#!/usr/bin/env python3
"""How high can a model score on a manifest? Its models' numbers next to the clip's own audio.

The visual AP of DESIGN.md ranks the peaks of a predicted envelope over all clips against the
manifest's hits. On eval/real-clips.toml those hits are audio-proxy onsets, two clips are
negatives with loud non-impact sounds (barking, coughing) and one (drum-kit-1) is dense drumming
with 3 proxy onsets, so even a perfect prediction of what the microphone hears does not score 1.
This script replays each clip once per model (`impactd replay --envelopes`) and scores, with the
rules of `impactd eval` (one-to-one, 0.125 s; eval/make_proxy_hits.py `pooled_ap`):

- each model's `predicted` envelope;
- `audio (observed)`: the audio envelope as the daemon scales it (min-max per window), used as
  if a model had predicted it; the windows follow the hop of the last model listed (1 for a
  streaming model, 6 for a clip model), so list a model of the form you compare against last;
- `audio (observed_raw)`: the smoothed audio level before scaling (what envelope r is
  measured against; its r is 1 by definition);
- on a manifest of `impactd synth` scenes (a label `scene-N.json` beside each clip's media),
  `label: visible impacts' sound`: the label's `envelope.impacts.frame-mean`, the clean sound of
  the visible impacts alone, with no noise and no unseen sounds: what a model that heard
  exactly what it sees would predict (the training target before its per-window scaling),
  and a last column: each envelope's r against that sound, how well it predicts what can be
  seen.

on all clips and on the clips with hits only.

With `--bootstrap N` it also says how much of a difference between the first model and each
other envelope the manifest can resolve: it resamples the clips with replacement N times (the
same resample for every envelope: a paired bootstrap over clips), scores each resample with the
same rules, and prints the 5th-95th percentile of each envelope's difference from the first
model in visual AP and envelope r, and the share of resamples in which it is ahead. Ten clips
are few; an interval that spans zero means the manifest cannot tell the two apart.

Usage (from the repository root):
    python3 eval/ceiling.py [--bin target/release/impactd] [--manifest eval/real-clips.toml]...
        [--out /tmp/impactd-ceiling] [--bootstrap 2000] MODEL.onnx...
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tomllib

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_proxy_hits import pearson, pooled_ap  # noqa: E402


def envelopes(binary, model, media, audio, out):
    """The replay's per-frame CSV as columns: predicted, observed, observed_raw."""
    cmd = [binary, "replay", "--model", model, media, "--envelopes", out, "--events", os.devnull]
    if audio:
        cmd += ["--audio", audio]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RUST_LOG="error"))
    if r.returncode != 0:
        sys.exit(f"impactd replay {media} --model {model} failed: {r.stderr.strip()[-400:]}")
    rows = np.loadtxt(out, delimiter=",", skiprows=1, ndmin=2)
    return rows[:, 2], rows[:, 3], rows[:, 4]


def mean_r(series, clips, against="raw"):
    """Mean per-clip Pearson r of `series` against each clip's `against` envelope."""
    rs = [r for r in (pearson(s, c[against]) for s, c in zip(series, clips)) if r is not None]
    return float(np.mean(rs)) if rs else None


def score(series, clips):
    ap = pooled_ap([(s, c["hits"]) for s, c in zip(series, clips)])
    return ap, mean_r(series, clips)


def bootstrap(rows, clips, n, seed=0):
    """Paired bootstrap over clips of each envelope's (AP, r) minus the first envelope's."""
    rng = np.random.default_rng(seed)
    names = list(rows)
    diffs = {k: [] for k in names[1:]}
    for _ in range(n):
        idx = rng.integers(0, len(clips), len(clips))
        sub = [clips[i] for i in idx]
        if not any(c["hits"] for c in sub):
            continue  # no hits, no AP: skip this resample
        base = score([rows[names[0]][i] for i in idx], sub)
        for k in names[1:]:
            ap, r = score([rows[k][i] for i in idx], sub)
            diffs[k].append((ap - base[0], (r - base[1]) if None not in (r, base[1]) else np.nan))
    print(f"\npaired bootstrap over clips ({n} resamples), minus {names[0]}:\n")
    print("| envelope | visual AP diff, 5th-95th pct | ahead on AP | envelope r diff, 5th-95th pct | ahead on r |")
    print("|---|---|---|---|---|")
    for k, d in diffs.items():
        d = np.array(d)
        cell = []
        for j in (0, 1):
            v = d[:, j][~np.isnan(d[:, j])]
            lo, mid, hi = np.percentile(v, [5, 50, 95])
            cell += [f"{mid:+.3f} [{lo:+.3f}, {hi:+.3f}]", f"{np.mean(v > 0):.0%}"]
        print(f"| {k} | " + " | ".join(cell) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--manifest", action="append",
                    help="a manifest (repeat to pool several); default eval/real-clips.toml")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/impactd-ceiling"))
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="paired bootstrap over clips with N resamples (0: none)")
    ap.add_argument("--hits-only", action="store_true",
                    help="leave out the clips without hits (negatives) everywhere, bootstrap included")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    stems = [pathlib.Path(m).stem for m in a.models]
    if len(set(stems)) != len(stems):
        ap.error(f"two models share a file name ({', '.join(stems)}): their rows would mix; "
                 "give each model once, and copy a model to tell two of one name apart")
    a.out.mkdir(parents=True, exist_ok=True)
    clips, rows = [], {}
    for man in map(pathlib.Path, a.manifest or ["eval/real-clips.toml"]):
        for e in tomllib.loads(man.read_text())["clip"]:
            media = (man.parent / e["media"]).resolve()
            audio = str((man.parent / e["audio"]).resolve()) if "audio" in e else None
            name = e.get("name", media.stem)
            clip = {"name": name, "hits": e["hits"]}
            for m in a.models:
                csv = a.out / f"{man.stem}.{name.replace('/', '_')}.{pathlib.Path(m).stem}.csv"
                pred, obs, raw = envelopes(a.bin, m, str(media), audio, csv)
                rows.setdefault(pathlib.Path(m).stem, []).append(pred)
                # observed_raw is the same whatever the model; observed is scaled per window,
                # so it follows the model's hop: the last model listed gives it
                clip.update(observed=obs, raw=raw)
            label = media.with_suffix(".json")
            if label.exists():
                stem = json.loads(label.read_text())["envelope"]["impacts"]["frame-mean"]
                n = len(clip["raw"])  # the replay's 12-fps frames; the label has the same grid
                clip["label"] = np.pad(np.asarray(stem, np.float64)[:n], (0, max(0, n - len(stem))))
            clips.append(clip)
    if a.hits_only:
        keep = [i for i, c in enumerate(clips) if c["hits"]]
        clips = [clips[i] for i in keep]
        rows = {k: [v[i] for i in keep] for k, v in rows.items()}
    rows["audio (observed)"] = [c["observed"] for c in clips]
    rows["audio (observed_raw)"] = [c["raw"] for c in clips]
    labelled = bool(clips) and all("label" in c for c in clips)  # impactd synth scenes
    if labelled:
        rows["label: visible impacts' sound"] = [c["label"] for c in clips]
    pos = [i for i, c in enumerate(clips) if c["hits"]]
    print(f"{' + '.join(a.manifest or ['eval/real-clips.toml'])}: {len(clips)} clips, {len(pos)} with hits ({sum(len(c['hits']) for c in clips)} hits)\n")
    print("| envelope | visual AP (all) | envelope r (all) | visual AP (clips with hits) | envelope r (clips with hits) |"
          + (" r against the visible impacts' sound (all) |" if labelled else ""))
    print("|---|---|---|---|---|" + ("---|" if labelled else ""))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for k, series in rows.items():
        ap_all, r_all = score(series, clips)
        ap_pos, r_pos = score([series[i] for i in pos], [clips[i] for i in pos])
        extra = f" {fmt(mean_r(series, clips, 'label'))} |" if labelled else ""
        print(f"| {k} | {fmt(ap_all)} | {fmt(r_all)} | {fmt(ap_pos)} | {fmt(r_pos)} |{extra}")
    if a.bootstrap:
        bootstrap(rows, clips, a.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
