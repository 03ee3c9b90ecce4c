"""Renders models/impact-s1.md from make_model.py's summary (every number comes from the run)."""

from __future__ import annotations

import train as tr


INT8_FORMATS = {"qdq": "QDQ", "qop": "QOperator"}


def int8_losses(s: dict) -> str:
    """What each int8 format tried lost in synthetic envelope r against float, in words."""
    return ", ".join(f"{INT8_FORMATS[k]} {d:.3f}" for k, d in s.get("int8_loss", {}).items()) or "none ran"


def f(v, nd=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def poisson_interval(k: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from one count k."""
    from scipy.stats import chi2
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else chi2.ppf(a, 2 * k) / 2
    return lo, chi2.ppf(1 - a, 2 * k + 2) / 2


def row(name: str, o: dict) -> str:
    ev = o.get("event", {})
    return (f"| {name} | {f(o.get('visual_ap'))} | {f(o.get('envelope_r'))} | "
            f"{f(ev.get('f1'))} ({f(ev.get('precision'), 2)} / {f(ev.get('recall'), 2)}) | "
            f"{f(o.get('seed_score'), 2)} | {f(o.get('av_discrimination'), 2)} | "
            f"{f(o.get('timing_median_s'), 3)} |")


def render(s: dict) -> str:
    res = s["results"]
    best = s["int8_format"]
    fmt_name = INT8_FORMATS.get(best, "none")
    shipped = best or "float"
    kinds = [("float", "impact-s1-float (float32)")]
    for k in ("qdq", "qop"):
        kinds.append((k, f"int8 {INT8_FORMATS[k]}" + (" (shipped: impact-s1)" if k == best else "")))
    kinds.append(("baseline", "motion-baseline"))
    t = s["timings"]
    c = s["counts"]
    lines = []
    a = lines.append
    a("# impact-s1 — the trained impact model (streaming form, class head)\n")
    venv = ("python3 -m venv /tmp/venv-train && /tmp/venv-train/bin/pip install -r "
            "models/train/requirements.txt")
    if s.get("float_model"):
        a("Made in two steps, from the repository root: a training run of `make_model.py` made the "
          "float network (the status below says which), and `--float-model` re-quantised and "
          "re-evaluated it as it is (about 5 minutes on a 2-core machine), which wrote the int8 "
          "files and this card:\n")
        a(f"```\n{venv}")
        a(f"/tmp/venv-train/bin/python models/train/make_model.py --work /tmp/impact-s1-q --float-model {s['float_model']}\n```\n")
        a(f"This card was written by `{s['command']}` ({s['minutes_total']:.0f} min in all): the float "
          f"network `{s['float_model']}` as it was, re-quantised and re-evaluated with the pipeline of "
          "the day (`--float-model`); its numbers are that run's. Data and intermediate files stay "
          "in `--work`.\n")
    else:
        a("Made by one command, from the repository root (about 35 minutes on a 2-core machine):\n")
        a(f"```\n{venv}")
        a("/tmp/venv-train/bin/python models/train/make_model.py --work /tmp/impact-s1\n```\n")
        a(f"This card was written by that command (`{s['command']}`, {s['minutes_total']:.0f} min in all); "
          "its numbers are the run's. Data, checkpoints and intermediate files stay in `--work`.\n")
    a("## Files\n")
    a("| file | what | bytes |\n|---|---|---|")
    for name, size in sorted(s["sizes"].items()):
        what = ("per-frame encoder" if "encoder" in name else "temporal head (the model path)")
        what += ", float32" if "float" in name else f", int8 {fmt_name}"
        a(f"| `models/{name}` | {what} | {size} |")
    a("| `models/impact-s1.toml`, `models/impact-s1-float.toml` | sidecars (form `streaming`) | |\n")
    if best:
        a("`impact-s1.onnx` is the int8 model and the daemon's default (src/config.rs). The float model "
          "stays beside it for comparison: `impactd replay --model models/impact-s1-float.onnx`.\n")
    else:
        a(f"**No int8 model**: neither int8 format came within {s.get('int8_limit', 0.02)} envelope r "
          f"of the float model (lost: {int8_losses(s)}), so this run wrote only the float model, beside "
          "this card in `WORK/no-int8/`, and left `--out` (the daemon's default model and its card) "
          "as it was. Another `--seed`, or more `--qat-steps`, draws another network.\n")
    a("## Architecture\n")
    a(f"Streaming form (DESIGN.md): {s['params']['encoder'] + s['params']['head']} parameters.")
    mem = s["train"].get("members") or []
    n = max(1, len(mem))
    if mem:
        seeds = ", ".join(str(m["seed"]) for m in mem)
        a(f"- **An ensemble of {n} networks** of the shape below, trained alone from seeds {seeds} "
          "(`train.Ensemble`): the encoder graph runs every member's encoder on the frame and "
          f"returns their features side by side ({n} x {tr.features_of(s.get('width', 1))}); the "
          "head graph runs each member's head on its own features and returns the mean of their "
          "envelopes and of their class logits. The parameter counts below are per member. "
          "Averaging draws is there because the real-clip numbers move more between seeds of one "
          "setting than between settings (models/train/README.md, \"An ensemble of seeds\").")
    a(f"- **Input**: gray-diff frames (luma minus the previous frame's, /255, /{tr.DIFF_STD}), {tr.IN_W}x{tr.IN_H}, 12 fps.")
    w = s.get("width", 1)
    a(f"- **Encoder** (once per frame, {s['params']['encoder'] // n} parameters): a {tr.stem_size()}x{tr.stem_size()} stride-{tr.stem_size()} patchify "
      f"convolution ({16 * w} channels), two 3x3 stride-2 convolutions without padding ({32 * w}, "
      f"{32 * w}), ReLU after each -> flatten {32 * w}x3x4 -> linear -> ReLU -> "
      f"{tr.features_of(w)} features. The stem and the "
      "missing padding follow the arm branch's tract measurements (a 3x3 convolution on one input "
      "channel is tract's worst matmul shape; each padded convolution costs tract a Pad op).")
    if s.get("lookahead", 0):
        first = ("a kernel-3 1-D convolution over the frame, the one before it and the one after it "
                 "(`lookahead_frames = 1` in the sidecar: a frame's value is final when the window "
                 "ending one frame later has run, 83 ms; it sees the image taken after an impact "
                 "that falls in the second half of its frame's audio interval)")
    else:
        first = ("a causal kernel-3 1-D convolution (no look-ahead, so a frame is final as soon as "
                 "the window ending on it has run: `lookahead_frames = 0` in the sidecar)")
    a(f"- **Head** (once per window, {s['params']['head'] // n} parameters): over the last 48 feature vectors, "
      f"{first} and four causal residual 1-D convolutions, dilations 1, 2, 4, 8 (32 frames of "
      f"context), {48 * w} channels -> envelope [1, 48] (sigmoid) and class logits [1, 48, 3] per frame "
      "(hit, collision, drop).\n")
    a("## Data\n")
    a(f"- Synthetic scenes from **{s['generator']}**, 8 s, 160x120: {c['train']} for training "
      f"(12 fps, seeds from 1000), {c['val']} of them held out for validation during training, "
      f"{c['calib']} held-out calibration scenes for int8 (seeds from 500000), and a test set of "
      f"{c['test']} scenes at 12, 15, 25 and 30 fps (seeds from 900000), never trained on, evaluated "
      "through the real daemon (`impactd eval`), so any train/serve mismatch shows.")
    a("- Target: the `impacts` stem's frame-mean envelope (the visible impacts' own sounds, not "
      "unseen sounds), scaled by its window maximum as the daemon scales what it hears; every "
      "visible impact's peak is raised to at least 0.8 (quiet and silent impacts are seen as well "
      "as loud ones). Classes: the label's class on the impact frame and its neighbours.")
    roles = s["roles"]
    a(f"- Real video with its own audio (../shared/data/real-pool, not committed): "
      f"{c['real_neg']} clips without visible impacts (speech, engines, water, music) as hard "
      f"negatives (target 0), {c['real_pos']} clips with visible impacts trained on their own "
      f"audio's envelope (scaled by the larger of the window's maximum and a quarter of the "
      f"clip's, so quiet windows' noise is not blown up); about "
      f"{100 * s.get('real_share', 0.1):.0f} % of what the network sees, mirrored and with "
      f"random contrast (as the synthetic scenes). Held out, never trained on: "
      f"{len(roles['val_neg'])} clips without impacts (with the negative clips of eval/real-clips.toml, "
      "the false-call numbers below), and every real-pool clip with impacts about a subject of "
      "eval/real-clips.toml (drums, hammers, tennis), so the real-clip hits are on unseen material. "
      "(Real-pool clips of barking dogs and coughing people are among the trained-on negatives: the "
      "real clips dog-barking and person-coughing are unseen recordings of seen subjects.)")
    if s.get("neg_fold"):
        a(f"- **Negatives fold {s['neg_fold']} held out** (`--neg-fold {s['neg_fold']}`), not the "
          "shipped split: the false-call numbers count that fold's clips, and the clips without "
          "impacts of eval/pool-holdout.toml were trained on, so its tables flatter this model.")
    whose = "the member's seed" if mem else f"seed {s['seed']}"
    seeded = (f", a {tr.WARMUP_STEPS}-step warm-up, initial weights and every draw from {whose} "
              "(a rerun of the command on the same machine gives the same weights)"
              if mem or "seed" in s else "")
    if mem:
        who = (", each member alone (`make_model.py --train-only`, in its own process with one "
               f"torch thread, {s.get('jobs', 2)} at a time)")
        minutes = ", ".join(format(m["train"]["minutes"], ".0f") for m in mem)
        steps = f"{mem[0]['train']['steps']} steps ({minutes} min)"
    else:
        who = ""
        steps = (f"{s['train']['steps']} steps ({s['train']['minutes']:.0f} min, "
                 f"{s.get('threads', 2)} threads)")
    if s.get("float_model"):
        a(f"- Training: none in this run. The float network is `{s['float_model']}` as it was: its "
          "training, quantisation-aware fine-tuning and class adjustment are those of the run that "
          "made it (`--float-model`); the data above is what the pipeline trains on today.")
    else:
        a(f"- Training{who}: AdamW, cosine learning rate{seeded}, {steps}, 6 scenes x 3 windows per "
          "step, half of the first windows front-padded as at a stream's start.")
    # summaries from before the option have no key: those runs rounded twice
    fold = s.get("fold_activations", False)
    if s["train"].get("qat_steps"):
        a(f"- Quantisation-aware fine-tuning (`train.qat_finetune`{', of the ensemble as one network' if mem else ''}): "
          f"{s['train']['qat_steps']} more steps ({s['train']['qat_minutes']:.0f} min) at a peak learning rate of "
          f"{s['train']['qat_lr']:g}, with every convolution's and the matrix product's input, "
          "weight and output rounded to int8 as the quantiser will round them (straight-through "
          "gradients"
          + ("; each encoder convolution's output rounded once, after its ReLU, as the folded "
             "int8 graph carries it" if fold else "")
          + "). The float model below is this fine-tuned network, so float and int8 are "
          "compared like for like.")
    pct = s.get("encoder_percentile")
    a("- int8 (`train.quantise`, onnxruntime `quantize_static`): int8 symmetric weights and uint8 "
      "activations, one scale per tensor, calibrated on the held-out calibration scenes; "
      + (f"the encoder's activation ranges at the {pct:g}th percentile of the calibration data "
         "(its activations are heavy-tailed: min/max ranges leave most of them a few of the 256 "
         "levels), the head's at their min/max" if pct else "activation ranges at their min/max")
      + ("; each ReLU folded into the convolution before it (one rounding per activation: "
         "models/train/README.md, \"One quantisation per activation\")." if fold else
         "; each convolution's output rounded over its own range, then dequantised, passed "
         "through its ReLU and rounded again (`--no-fold-activations`)."))
    a("")
    a("## Quality (DESIGN.md, \"Measuring quality\")\n")
    def quality_table(overall):
        """The DESIGN.md metrics, one row per model; `overall(k)` gives model k's numbers."""
        a("| model | visual AP | envelope r | event F1 (P / R) | seed score | AV discr. | timing median (s) |")
        a("|---|---|---|---|---|---|---|")
        for k, name in kinds:
            if k in res:
                a(row(name, overall(k)))

    a(f"### (a) Synthetic test set ({c['test']} scenes, 12/15/25/30 fps)\n")
    quality_table(lambda k: res[k]["synthetic"])
    a("\nTargets: envelope r >= 0.85, visual AP >= 0.9, event F1 >= 0.95.")
    if "float" in res and best:
        d = res["float"]["synthetic"]["envelope_r"] - res[best]["synthetic"]["envelope_r"]
        a(f"int8 ({fmt_name}) loses {d:.4f} envelope r against float (limit {s.get('int8_limit', 0.02)}).\n")
    if s.get("synthetic_ceiling_text"):
        a("What a perfect visual model would score here: `eval/ceiling.py --manifest TEST` scores the "
          "labels' own `envelope.impacts.frame-mean` (the clean sound of the visible impacts, no "
          "noise, no unseen sounds) as if a model had predicted it, beside the heard audio "
          "(`observed`: scaled per window as the daemon compares; `observed_raw`: what envelope r "
          "is measured against). Envelope r is measured against everything the microphone hears, "
          "unseen sounds and noise included, and visual AP counts a peak at a visible impact that cannot be "
          "heard (a dead or muted microphone, a bounce masked by the one before it) as a false "
          "positive: the manifest's hits are the impacts both visible and audible. The "
          "last row is about the most a model that sees can score; read the targets against it.\n")
        a(s["synthetic_ceiling_text"].strip() + "\n")
    a("### (b) Real clips (eval/real-clips.toml: hits are audio-derived proxies, see eval/README.md)\n")
    if all("real" in res[k] for k, _ in kinds if k in res):
        quality_table(lambda k: res[k]["real"]["overall"])
        a("\nPer clip (shipped model): visual AP, envelope r, impact events / proxy hits\n")
        a("| clip | visual AP | envelope r | impacts | hits |\n|---|---|---|---|---|")
        for cl in res[shipped]["real"]["clips"]:
            ev = cl.get("event", {})
            a(f"| {cl.get('name')} | {f(cl.get('visual_ap'))} | {f(cl.get('envelope_r'))} | "
              f"{f(ev.get('tp', 0) + ev.get('fp', 0) if isinstance(ev, dict) else None)} | {f(cl.get('hits'))} |")
    else:
        a("(../shared/data was not there when the card was made.)")
    if all("pool" in res[k] for k, _ in kinds if k in res):
        a("\n### (c) Held-out real-pool clips (eval/pool-holdout.toml: the real-pool clips training "
          "never sees; audio-proxy hits)\n")
        quality_table(lambda k: res[k]["pool"]["overall"])
    if s.get("heldout_text"):
        a("\n### (b) and (c) together, with a paired bootstrap over clips\n")
        a("`python3 eval/ceiling.py --bootstrap 2000 --manifest eval/real-clips.toml --manifest "
          "eval/pool-holdout.toml BASELINE FLOAT SHIPPED` (eval/README.md): visual AP and envelope r "
          "of every model and of the clips' own audio, then each one's difference from the baseline, "
          "5th-95th percentile over 2000 resamples of the clips.\n")
        a(s["heldout_text"].strip())
    a("\n### Real clips without visible impacts (held out: real-pool negatives, dog-barking, person-coughing)\n")
    a("Impact events per minute of replay (they should be `unseen_sound`); target <= 5. The held-out "
      "negatives are less than a minute of video, so the counts are small: the last column is the "
      "exact 95 % Poisson interval of the rate.\n")
    a("| model | impacts | minutes | per minute | 95 % interval |\n|---|---|---|---|---|")
    for k, name in kinds:
        if k in res:
            n = res[k]["negatives"]
            lo, hi = poisson_interval(n["impacts"])
            m = n["minutes"] or float("nan")
            a(f"| {name} | {n['impacts']} | {f(n['minutes'], 1)} | {f(n['per_minute'], 2)} | "
              f"{lo / m:.1f} - {hi / m:.1f} |")
    a("\n### Class head\n")
    cl = s["classes"]
    conf = cl["confusion"]
    rec = {k: (conf[k][k] / sum(conf[k].values()) if sum(conf[k].values()) else None) for k in tr.CLASSES}
    known = [v for v in rec.values() if v is not None]
    adj = s.get("class_adjust")
    if adj and adj["tau"]:
        vb, va = adj["validation_before"], adj["validation_after"]
        a(f"Logit adjustment (`--class-tau {adj['tau']:g}`, `train.adjust_class_logits`): the training impacts are "
          + ", ".join(f"{100 * v:.0f} % {k}" for k, v in adj["prior"].items())
          + f", and a head trained on that mix seldom says `hit`; tau x log(share) is subtracted from its "
          f"bias after training so that its argmax is right about equally often on every class. On the "
          f"{va['impacts']} visible impacts of the validation scenes: accuracy {f(vb['accuracy'])} -> "
          f"{f(va['accuracy'])}, balanced accuracy (mean of the per-class recalls) {f(vb['balanced'])} -> "
          f"{f(va['balanced'])}, recall " + ", ".join(
              f"{k} {f(vb['recall'][k])} -> {f(va['recall'][k])}" for k in tr.CLASSES) + ".\n")
    a(f"On {cl.get('scenes', c['test'])} scenes of the synthetic test set, the {cl['matched']} impact events matched to a labelled impact "
      f"(0.125 s) carry the right class {f(cl['accuracy'])} of the time (model {shipped}); "
      f"balanced accuracy {f(sum(known) / len(known) if known else None)}, recall "
      + ", ".join(f"{k} {f(v)}" for k, v in rec.items()) + ". Confusion (rows: label, columns: predicted):\n")
    a("| label \\ predicted | " + " | ".join(tr.CLASSES) + " |\n|---|---|---|---|")
    for lab in tr.CLASSES:
        a(f"| {lab} | " + " | ".join(str(cl["confusion"][lab][p]) for p in tr.CLASSES) + " |")
    if s["real_classes"]:
        a("\nWhat it says on the real clips (impact events by class):\n")
        a("| clip | " + " | ".join(tr.CLASSES) + " |\n|---|---|---|---|")
        for name, counts in s["real_classes"].items():
            a(f"| {name} | " + " | ".join(str(counts[k]) for k in tr.CLASSES) + " |")
    a("\n## Speed (`impactd bench --model M --windows 300`, this machine, tract and onnxruntime in the same run)\n")
    a("Per window: the head alone (clip form: the whole graph). Per frame: `push_frame`, i.e. "
      "preprocessing plus the encoder. Target: <= 5 ms per frame in tract on one core.\n")
    a("| model | tract per frame (ms) | tract per window (ms) | tract per hop of 6 (ms) | ort per frame (ms) | ort per window (ms) |")
    a("|---|---|---|---|---|---|")
    for k, name in kinds:
        if k in t:
            v = t[k]
            a(f"| {name} | {f(v.get('tract_frame_ms'))} | {f(v.get('tract_window_ms'))} | "
              f"{f(v.get('tract_hop_ms'))} | {f(v.get('ort_frame_ms'))} | {f(v.get('ort_window_ms'))} |")
    for k, v in t.items():
        if "error" in v:
            a(f"\n{k}: tract could not run it: `{v['error']}`")
    a(f"\nThe int8 format shipped is the one that is within 0.02 r of float and fastest in tract "
      f"(per hop: 6 frames + 1 window): {fmt_name}.")
    a(f"\nStreaming vs clip export of the same float network through the daemon: max |predicted "
      f"difference| {s['equivalence']:.1e} (limit 1e-4).\n")
    return "\n".join(lines) + "\n"
