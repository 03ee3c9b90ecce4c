//! Where tract spends its time on an ONNX model: whole-run latency and a per-node / per-op
//! breakdown of the optimised plan, on random input of a given shape.
//!
//! ```sh
//! cargo run --release --example tract_profile -- MODEL.onnx 1,1,48,64,64 [RUNS]
//! ```
//!
//! Build it in release: in the dev profile tract checks every node's facts on every run
//! (`debug_assertions`), which swamps small ops. `bench/profile-models.sh` runs it over the
//! candidate architectures that `bench/make_profile_models.py` writes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: tract_profile MODEL.onnx SHAPE(e.g. 1,1,48,64,64) [RUNS=200]");
        std::process::exit(2);
    }
    let path = &args[1];
    let shape: Vec<usize> = args[2]
        .split(',')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("bad shape {:?}: {e}", args[2]))?;
    let runs: usize = args.get(3).map_or(Ok(200), |r| r.parse())?;

    let t0 = Instant::now();
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact(shape.clone()).into())?
        .into_optimized()?;
    let load = t0.elapsed();
    let plan = model.into_runnable()?;
    let mut state = TypedSimpleState::new(&plan)?;

    // Deterministic pseudo-random input in [0, 1).
    let n: usize = shape.iter().product();
    let mut x = 0x2545_f491_u32;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect();
    let input = Tensor::from_shape(&shape, &data)?;

    for _ in 0..10 {
        state.run(tvec!(input.clone().into_tvalue()))?;
    }
    // Whole runs, no instrumentation.
    let mut whole: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        state.run(tvec!(input.clone().into_tvalue()))?;
        whole.push(t.elapsed());
    }
    whole.sort();
    let median = whole[runs / 2];

    // Node by node.
    let mut per_node: HashMap<usize, Duration> = HashMap::new();
    for _ in 0..runs {
        state.run_plan_with_eval(
            tvec!(input.clone().into_tvalue()),
            |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                *per_node.entry(node.id).or_default() += t.elapsed();
                r
            },
        )?;
    }
    let total: Duration = per_node.values().sum();
    let mut rows: Vec<(usize, Duration)> = per_node.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let mut per_op: HashMap<String, (Duration, usize)> = HashMap::new();
    for (id, d) in &rows {
        let e = per_op
            .entry(plan.model().node(*id).op().name().to_string())
            .or_default();
        e.0 += *d;
        e.1 += 1;
    }
    let mut ops: Vec<(String, (Duration, usize))> = per_op.into_iter().collect();
    ops.sort_by_key(|o| std::cmp::Reverse(o.1.0));

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{path} input {shape:?}: median {:.3} ms per run (p90 {:.3}), {} nodes, load+optimise {:.0} ms",
        ms(median),
        ms(whole[runs * 9 / 10]),
        plan.model().nodes().len(),
        ms(load)
    );
    println!("  per op kind (share of instrumented time):");
    for (op, (d, count)) in &ops {
        println!(
            "    {:>6.1}%  {:>8.4} ms  {op} (x{count})",
            100.0 * d.as_secs_f64() / total.as_secs_f64(),
            ms(*d) / runs as f64
        );
    }
    println!("  top nodes:");
    for (id, d) in rows.iter().take(8) {
        let node = plan.model().node(*id);
        println!(
            "    {:>6.1}%  {:>8.4} ms  {} {}",
            100.0 * d.as_secs_f64() / total.as_secs_f64(),
            ms(*d) / runs as f64,
            node.name,
            node.op().name()
        );
    }
    Ok(())
}
