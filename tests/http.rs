//! The HTTP sink on the real binary: SSE with a real HTTP client (live, resume by
//! Last-Event-ID, history overflow, a client that never reads), /metrics through a Prometheus
//! text parser, /healthz, /status, and bad requests.

mod sinks_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sinks_common::{Daemon, SCENE_EVENTS, events};

/// One SSE message: its `event:` type (empty for a plain message), `id:` and `data:`.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    kind: String,
    id: Option<u64>,
    data: String,
}

/// Reads SSE messages from a streaming response.
struct Sse {
    body: minreq::ResponseLazy,
}

impl Sse {
    fn open(url: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = minreq::get(url).with_timeout(30);
        if let Some(id) = last_event_id {
            req = req.with_header("Last-Event-ID", id);
        }
        let body = req.send_lazy().expect("GET /events");
        assert_eq!(body.status_code, 200);
        assert_eq!(body.headers["content-type"], "text/event-stream");
        Sse { body }
    }

    /// The next message (comments skipped); None at the end of the stream.
    fn next(&mut self) -> Option<Message> {
        loop {
            let mut block = Vec::new();
            loop {
                let (b, _) = self.body.next()?.expect("reading the SSE stream");
                block.push(b);
                if block.ends_with(b"\n\n") {
                    break;
                }
            }
            let text = String::from_utf8(block).unwrap();
            let mut m = Message {
                kind: String::new(),
                id: None,
                data: String::new(),
            };
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    m.kind = v.into();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    m.id = Some(v.parse().unwrap());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    m.data = v.into();
                }
            }
            if !m.data.is_empty() {
                return Some(m);
            }
        }
    }
}

fn get(url: &str) -> (i32, String) {
    let r = minreq::get(url).with_timeout(10).send().expect(url);
    (r.status_code, r.as_str().unwrap_or("").to_string())
}

fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let (code, text) = get(&format!("http://{addr}/metrics"));
    assert_eq!(code, 200);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

/// The value of `name` (with `label` = `value`, if given).
fn metric(s: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no {name} {label:?} in /metrics"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

#[test]
fn sse_live_resume_and_a_client_that_never_reads() {
    let mut d = Daemon::start(&[
        "replay",
        "--realtime",
        "--http",
        "127.0.0.1:0",
        "--linger",
        "4s",
    ]);
    let addr = d.http_addr();
    let url = format!("http://{addr}/events");

    // A client that sends its request and never reads a byte.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();

    // Live: the first two events as they happen.
    let mut live = Sse::open(&url, None);
    let first = live.next().unwrap();
    assert_eq!(first.kind, "", "plain messages");
    let e1: serde_json::Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(
        first.id,
        Some(e1["id"].as_u64().unwrap()),
        "id: is the event id"
    );
    let (code, body) = get(&format!("http://{addr}/healthz"));
    assert_eq!(
        (code, body.as_str()),
        (200, "ok\n"),
        "healthy while replaying"
    );
    let second = live.next().unwrap();
    assert_eq!(second.id, Some(first.id.unwrap() + 1));
    drop(live);

    // Resume after the second: everything after it, each once, in order, to the end.
    let mut resumed = Sse::open(&url, Some(&second.id.unwrap().to_string()));
    let mut ids = vec![first.id.unwrap(), second.id.unwrap()];
    let mut last_data = String::new();
    while let Some(m) = resumed.next() {
        assert_eq!(m.kind, "", "no overflow notice: nothing was missed");
        ids.push(m.id.unwrap());
        last_data = m.data;
        if ids.len() == SCENE_EVENTS {
            break;
        }
    }

    // /status and /metrics while the daemon lingers after the stream.
    d.wait_for("lingering", Duration::from_secs(60));
    let (code, body) = get(&format!("http://{addr}/status"));
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["mode"], "replay");
    assert_eq!(status["backend"], "tract");
    let last: serde_json::Value = serde_json::from_str(&last_data).unwrap();
    assert_eq!(status["last_event"], last, "the last event, as SSE sent it");
    assert_eq!(status["counters"]["frames_processed"], 198);
    assert_eq!(status["sources"][0]["name"], "video");

    let (code, body) = get(&format!("http://{addr}/healthz"));
    assert_eq!(code, 503, "the sources have ended");
    assert!(body.contains("offline"), "{body}");

    let m = scrape(&addr);
    assert_eq!(
        metric(&m, "impactd_events_total", Some(("kind", "impact"))),
        3.0
    );
    assert_eq!(
        metric(&m, "impactd_events_total", Some(("kind", "unseen_sound"))),
        1.0
    );
    assert_eq!(
        metric(&m, "impactd_events_total", Some(("kind", "silent_impact"))),
        1.0
    );
    // The built-in scene: 16.5 s at 12 fps, 44.1 kHz audio, hop 6.
    assert_eq!(metric(&m, "impactd_frames_processed_total", None), 198.0);
    assert_eq!(
        metric(&m, "impactd_video_frames_captured_total", None),
        198.0
    );
    assert!(metric(&m, "impactd_audio_samples_captured_total", None) >= 16.5 * 44100.0);
    assert_eq!(metric(&m, "impactd_windows_total", None), 33.0);
    assert_eq!(
        metric(&m, "impactd_source_up", Some(("source", "video"))),
        0.0
    );
    assert!(metric(&m, "impactd_audio_level_dbfs", None) < 0.0);
    let count = m
        .samples
        .iter()
        .find(|s| s.metric == "impactd_inference_seconds")
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            v => panic!("histogram expected, got {v:?}"),
        })
        .expect("inference histogram");
    assert_eq!(count, 33.0, "one observation per window");
    assert_eq!(
        metric(&m, "impactd_sink_dropped_total", Some(("sink", "http"))),
        0.0
    );
    assert!(
        metric(&m, "impactd_sse_clients", None) >= 2.0,
        "the stalled one and the resumed one"
    );

    drop(resumed);
    let (code, out, _) = d.finish(Duration::from_secs(60));
    assert_eq!(code, 0);
    let stdout_ids: Vec<u64> = events(&out)
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        stdout_ids,
        (1..=SCENE_EVENTS as u64).collect::<Vec<_>>(),
        "stdout kept flowing"
    );
    assert_eq!(
        ids, stdout_ids,
        "the SSE clients saw every event once, in order"
    );
    drop(stalled);
}

#[test]
fn resuming_from_before_the_history_is_told_what_was_missed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[http]\nhistory = 2\n").unwrap();
    let mut d = Daemon::start(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--linger",
        "30s",
    ]);
    let addr = d.http_addr();
    d.wait_for("lingering", Duration::from_secs(60));
    let url = format!("http://{addr}/events");

    // From the start (after 0): events 1..=3 are gone, 4 and 5 are held.
    let mut s = Sse::open(&url, Some("0"));
    let notice = s.next().unwrap();
    assert_eq!(notice.kind, "overflow");
    let v: serde_json::Value = serde_json::from_str(&notice.data).unwrap();
    assert_eq!(v["requested_after"], 0);
    assert_eq!(v["oldest_available"], 4);
    assert_eq!(v["missed"], 3);
    assert_eq!(s.next().unwrap().id, Some(4));
    assert_eq!(s.next().unwrap().id, Some(5));
    drop(s);

    // ?since= works like the header, and within the history there is no notice.
    let mut s = Sse::open(&format!("{url}?since=4"), None);
    let m = s.next().unwrap();
    assert_eq!((m.kind.as_str(), m.id), ("", Some(5)));
    let e: serde_json::Value = serde_json::from_str(&m.data).unwrap();
    assert_eq!(e["id"], 5);
    drop(s);

    // An id newer than any event (a client of an earlier run) is told too.
    let mut s = Sse::open(&url, Some("99"));
    assert_eq!(s.next().unwrap().kind, "overflow");
    drop(s);

    let m = scrape(&addr);
    assert_eq!(metric(&m, "impactd_sse_history_overflows_total", None), 2.0);

    let (code, body) = get(&format!("{url}?since=abc"));
    assert_eq!(code, 400);
    assert!(body.contains("abc"), "{body}");
}

#[test]
fn bad_requests_get_4xx_and_the_server_keeps_serving() {
    let mut d = Daemon::start(&["replay", "--http", "127.0.0.1:0", "--linger", "30s"]);
    let addr = d.http_addr();
    d.wait_for("lingering", Duration::from_secs(60));

    let (code, body) = get(&format!("http://{addr}/nope"));
    assert_eq!(code, 404);
    assert!(body.contains("/nope"), "{body}");
    let (code, _) = get(&format!("http://{addr}/events/1/plot.png"));
    assert_eq!(code, 404, "evidence is off");
    let (code, body) = get(&format!("http://{addr}/events/x1/plot.png"));
    assert_eq!(code, 400);
    assert!(body.contains("x1"), "{body}");
    let r = minreq::post(format!("http://{addr}/metrics"))
        .send()
        .unwrap();
    assert_eq!(r.status_code, 405);

    // Not HTTP at all, and a request line with no version.
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"BREW /pot HTTP/1.1\r\n\r\n",
    ] {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(garbage).unwrap();
        let mut reply = Vec::new();
        let _ = c.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        let code: u16 = reply
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert!(
            (400..500).contains(&code) || reply.is_empty(),
            "{garbage:?} -> {reply}"
        );
    }
    let (code, _) = get(&format!("http://{addr}/healthz"));
    assert_eq!(code, 503, "still answering (the replay has ended)");
}

#[test]
fn an_address_in_use_is_a_clear_error_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let d = Daemon::start(&["replay", "--http", &addr]);
    let (code, out, err) = d.finish(Duration::from_secs(60));
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "nothing ran: {out}");
    assert!(
        err.contains(&addr) && err.contains("http.bind") && err.to_lowercase().contains("in use"),
        "{err}"
    );

    let d = Daemon::start(&["replay", "--http", "localhost"]);
    let (code, _, err) = d.finish(Duration::from_secs(60));
    assert_eq!(code, 2);
    assert!(
        err.contains("http.bind") && err.contains("localhost"),
        "{err}"
    );
}

/// `impactd run` carries the same sinks as replay: with live-paced sources (the built-in scene
/// played as camera and microphone) /healthz turns 200 once both flow, /metrics counts what the
/// live pipeline processed, and SIGTERM still ends the run cleanly with the server attached.
#[test]
fn run_serves_health_and_metrics_from_live_sources() {
    let mut d = Daemon::start(&[
        "run",
        "--video",
        "scene",
        "--audio-device",
        "scene",
        "--http",
        "127.0.0.1:0",
    ]);
    let addr = d.http_addr();
    let end = Instant::now() + Duration::from_secs(30);
    let mut last = (0, String::new());
    while Instant::now() < end {
        last = get(&format!("http://{addr}/healthz"));
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last.0, 200, "healthz never turned healthy: {}", last.1);
    // Let a few more frames through, then check the live counters.
    std::thread::sleep(Duration::from_millis(1500));
    let m = scrape(&addr);
    assert_eq!(
        metric(&m, "impactd_source_up", Some(("source", "video"))),
        1.0
    );
    assert_eq!(
        metric(&m, "impactd_source_up", Some(("source", "audio"))),
        1.0
    );
    let processed = metric(&m, "impactd_frames_processed_total", None);
    assert!(processed >= 12.0, "{processed} frames processed");
    assert!(metric(&m, "impactd_video_frames_captured_total", None) >= processed);
    assert!(metric(&m, "impactd_audio_samples_captured_total", None) >= 44100.0);
    let (code, status) = get(&format!("http://{addr}/status"));
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["mode"], "run", "{status}");
    // SIGTERM: drains, flushes, exits 0 with the HTTP server attached.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    let (code, _out, log) = d.finish(Duration::from_secs(5));
    assert_eq!(code, 0, "{log}");
}
