#!/usr/bin/env python3
"""Endurance and latency of `impactd run` on a live-paced, looping source.

Runs `impactd run --video scene --audio-device scene` (the built-in scene as a camera and a
microphone, paced in real time and looped: 12-fps analysis of a 30-fps 160x120 picture and
44.1-kHz sound) for DURATION seconds, then SIGTERM. Reports:
  - CPU: utime+stime of the process over the run, as % of one core;
  - resident memory (VmRSS) sampled every SAMPLE seconds: first, last, max, and the drift from
    minute 2 to the end (flat memory = no growth);
  - event latency: the time the event line reached stdout minus the event's `ts` (the wall
    clock of the impact itself, refined from the audio): p50, p95, max, for `impact` events
    (the target) and for every event (`unseen_sound` waits, by design, until no visual peak can
    still match).

Usage: scripts/live-bench.py [--bin target/release/impactd] [--duration 3600] [--sample 30]
       [--model ONNX] [--hop N] [--json out.json]
(no --model: the daemon's default model; no --hop: the model's default hop)
"""
import argparse, json, os, signal, statistics, subprocess, sys, threading, time
from datetime import datetime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--duration", type=float, default=3600)
    ap.add_argument("--sample", type=float, default=30)
    ap.add_argument("--hop", type=int)
    ap.add_argument("--model")
    ap.add_argument("--json")
    a = ap.parse_args()
    cmd = [a.bin, "run", "--video", "scene", "--audio-device", "scene"]
    if a.hop:
        cmd += ["--hop", str(a.hop)]
    if a.model:
        cmd += ["--model", a.model]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latencies, kinds, impact_lat = [], {}, []

    def read_events():
        for line in p.stdout:
            arrived = time.time()
            e = json.loads(line)
            ts = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
            latencies.append(arrived - ts)
            if e["kind"] == "impact":
                impact_lat.append(arrived - ts)
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1

    err_lines = []
    threading.Thread(target=read_events, daemon=True).start()
    threading.Thread(target=lambda: err_lines.extend(p.stderr), daemon=True).start()
    t0 = time.time()
    cpu0 = cpu_s(p.pid)
    samples = []
    while time.time() - t0 < a.duration:
        time.sleep(min(a.sample, max(0.0, a.duration - (time.time() - t0))))
        if p.poll() is not None:
            sys.exit(f"impactd exited early: {''.join(err_lines)[-2000:]}")
        samples.append((time.time() - t0, rss_kib(p.pid)))
        print(f"{samples[-1][0]:7.0f} s  rss {samples[-1][1] / 1024:6.1f} MiB  events {len(latencies)}", file=sys.stderr, flush=True)
    cpu1 = cpu_s(p.pid)
    wall = time.time() - t0
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    time.sleep(0.2)
    after2 = [r for t, r in samples if t >= 120] or [r for _, r in samples]
    def q(values, x):
        v = sorted(values)
        return round(v[min(len(v) - 1, int(x * len(v)))], 3) if v else None
    out = {
        "command": " ".join(cmd),
        "duration_s": round(wall, 1),
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / wall, 2),
        "rss_mib_first": round(samples[0][1] / 1024, 1),
        "rss_mib_last": round(samples[-1][1] / 1024, 1),
        "rss_mib_max": round(max(r for _, r in samples) / 1024, 1),
        "rss_mib_drift_after_2min": round((after2[-1] - after2[0]) / 1024, 2),
        "events": kinds,
        "impact_latency_s_p50": q(impact_lat, 0.5),
        "impact_latency_s_p95": q(impact_lat, 0.95),
        "impact_latency_s_max": q(impact_lat, 1.0),
        "latency_s_p50": q(latencies, 0.5),
        "latency_s_p95": q(latencies, 0.95),
        "latency_s_max": q(latencies, 1.0),
        "exit_code": p.returncode,
    }
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({**out, "rss_samples": samples}, f)


if __name__ == "__main__":
    main()
