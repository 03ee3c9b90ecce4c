//! `impactd eval` end to end: the built-in scene written out as Y4M + WAV, and a still clip whose
//! sounds have no visible cause; the metrics must tell them apart.

use std::process::Command;

use impactd::media::PixelFormat;
use impactd::sources::synthetic::{Scene, Truth};

mod common;
use common::{BASELINE, write_wav, write_y4m};

#[test]
fn eval_scores_a_clip_and_its_mismatched_pair() {
    let dir = tempfile::tempdir().unwrap();
    let scene = Scene::default();
    let n = (scene.duration * scene.fps).round() as u64;
    // Clip A: the built-in scene.
    write_y4m(
        &dir.path().join("scene.y4m"),
        (0..n).map(|i| {
            scene
                .render_frame(i as f64 / scene.fps, i, PixelFormat::Gray8)
                .data
        }),
        scene.width,
        scene.height,
    );
    let audio = scene.render_audio();
    write_wav(&dir.path().join("scene.wav"), &audio, scene.rate);
    // Clip B: nothing moves (the first frame held), three knocks.
    let still = scene.render_frame(0.0, 0, PixelFormat::Gray8).data;
    write_y4m(
        &dir.path().join("still.y4m"),
        (0..n).map(|_| still.clone()),
        scene.width,
        scene.height,
    );
    let mut knocks = vec![0.0f32; audio.len()];
    let clicks = [2.5, 7.25, 12.0];
    for &c in &clicks {
        let i = (c * scene.rate as f64) as usize;
        for (k, v) in knocks[i..i + 2000].iter_mut().enumerate() {
            *v = 0.7 * (-(k as f32) / 300.0).exp() * if k % 8 < 4 { 1.0 } else { -1.0 };
        }
    }
    write_wav(&dir.path().join("still.wav"), &knocks, scene.rate);

    let hits: Vec<f64> = scene
        .truth()
        .iter()
        .filter_map(|t| {
            if let Truth::Impact(t) = t {
                Some(*t)
            } else {
                None
            }
        })
        .collect();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let manifest = format!(
        "[[clip]]\nname = \"scene\"\nmedia = \"scene.y4m\"\naudio = \"scene.wav\"\nhits = [{}]\n\n\
         [[clip]]\nname = \"still\"\nmedia = \"still.y4m\"\naudio = \"still.wav\"\nhits = [{}]\nhits_source = \"annotated\"\n",
        fmt(&hits),
        fmt(&clicks)
    );
    let mpath = dir.path().join("manifest.toml");
    std::fs::write(&mpath, manifest).unwrap();

    let out = impactd()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .args(["eval", mpath.to_str().unwrap(), "--json", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clip = |name: &str| {
        v["clips"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let scene_m = clip("scene");
    // every knock of the scene is a confirmed impact, on time
    assert_eq!(scene_m["event"]["tp"], 3, "{scene_m}");
    assert_eq!(scene_m["event"]["fp"], 0, "{scene_m}");
    assert!(
        scene_m["timing_median_s"].as_f64().unwrap() < 0.002,
        "{scene_m}"
    );
    // The silent drop is the tallest visual peak and no hit: ranked first, a false positive, so
    // AP = (1/2 + 2/3 + 3/4) / 3 = 0.639 when the three knocks' peaks follow it.
    assert!(
        (scene_m["visual_ap"].as_f64().unwrap() - 0.6389).abs() < 1e-3,
        "{scene_m}"
    );
    assert_eq!(scene_m["confirmed_genuine"], 1.0);
    // its audio under the still video confirms nothing: the model sees no motion there
    assert_eq!(scene_m["confirmed_mismatched"], 0.0, "{scene_m}");
    // the still clip: sounds, no impacts
    let still_m = clip("still");
    assert_eq!(still_m["event"]["tp"], 0, "{still_m}");
    assert_eq!(still_m["confirmed_genuine"], 0.0);
    let o = &v["overall"];
    assert_eq!(o["clips"], 2);
    assert!(o["av_discrimination"].as_f64().unwrap() > 0.4, "{o}");

    // the table form names every clip and the overall row
    let out = impactd()
        .env("RUST_LOG", "warn")
        .args(["eval", mpath.to_str().unwrap()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    for row in ["scene", "still", "overall"] {
        assert!(table.contains(row), "{table}");
    }
}

#[test]
fn bad_manifests_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("", "no [[clip]]"),
        ("[[clip]]\nmedia = \"x.y4m\"\n", "hits"),
        (
            "[[clip]]\nmedia = \"x.y4m\"\nhits = [-1.0]\n",
            "non-negative",
        ),
        (
            "[[clip]]\nmedia = \"x.y4m\"\nhits = []\nhits_source = \"guess\"\n",
            "hits_source",
        ),
        (
            "[[clip]]\nmedia = \"x.y4m\"\nhits = []\ncolour = 1\n",
            "colour",
        ),
    ] {
        let p = dir.path().join("m.toml");
        std::fs::write(&p, text).unwrap();
        let out = impactd()
            .args(["eval", p.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle) && err.contains("m.toml"),
            "{text:?}: {err}"
        );
    }
    // a clip that cannot be read is a media error naming the clip
    let p = dir.path().join("m.toml");
    std::fs::write(
        &p,
        "[[clip]]\nname = \"gone\"\nmedia = \"gone.y4m\"\nhits = []\n",
    )
    .unwrap();
    let out = impactd()
        .args(["eval", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gone"));
}

#[test]
fn realtime_replay_is_paced_like_a_live_stream() {
    let dir = tempfile::tempdir().unwrap();
    let still = vec![100u8; 64 * 48];
    write_y4m(
        &dir.path().join("v.y4m"),
        (0..45).map(|_| still.clone()),
        64,
        48,
    );
    write_wav(&dir.path().join("a.wav"), &vec![0.0; 24_000], 16_000);
    let t0 = std::time::Instant::now();
    let out = impactd()
        .env("RUST_LOG", "warn")
        .args([
            "replay",
            dir.path().join("v.y4m").to_str().unwrap(),
            "--audio",
            dir.path().join("a.wav").to_str().unwrap(),
            "--realtime",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 1.5 s of media cannot finish sooner than its last frame is due (a lower bound only: a busy
    // machine may take longer).
    assert!(t0.elapsed().as_secs_f64() >= 1.4, "{:?}", t0.elapsed());
}

fn impactd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_impactd"));
    c.env("IMPACTD_MODEL", BASELINE);
    c
}
