//! The MQTT sink against a real `mosquitto` broker (Debian package `mosquitto`; .ci/run installs
//! it), started by each test on a free loopback port with a generated config: events arrive,
//! availability and the last will, Home Assistant discovery, refused credentials and a broker
//! that vanishes.

mod sinks_common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use sinks_common::{Daemon, SCENE_EVENTS, events};

/// A mosquitto of our own; killed on drop.
struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts mosquitto on a free port; `extra` is added to its config.
    ///
    /// The port is free when we look, but another test (or process) may take it before
    /// mosquitto binds it; mosquitto then exits with "Address already in use" while the port
    /// answers for someone else's broker. So a broker counts as started only when its own log
    /// says "running", and a lost race is retried on a new port.
    fn start(extra: &str, prepare: impl FnOnce(&Path)) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let log = dir.path().join("mosquitto.log");
        let conf = dir.path().join("mosquitto.conf");
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let _ = std::fs::remove_file(&log);
            std::fs::write(
                &conf,
                // `user root`: as root (CI), stay root so the files in our 0700 temp dir stay
                // readable (mosquitto ignores it when not started as root).
                format!(
                    "listener {port} 127.0.0.1\npersistence false\nuser root\nlog_dest file {}\n{extra}\n",
                    log.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(mosquitto())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto must be installed for these tests (apt-get install mosquitto)");
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(status) = child.try_wait().unwrap() {
                    failures.push(format!("port {port}: exited with {status}: {text}"));
                    break;
                }
                if text.contains(" running") {
                    return Broker {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(format!("port {port}: not running after 10 s: {text}"));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("mosquitto did not start: {failures:#?}");
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto` lives in /usr/sbin on Debian, which is not on every PATH.
fn mosquitto() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// A message seen by the test's subscriber.
#[derive(Debug, Clone)]
struct Seen {
    topic: String,
    payload: String,
    retain: bool,
}

/// Subscribes to `filters` and hands every publish to the returned channel.
fn subscribe(port: u16, id: &str, filters: &[&str]) -> (Client, mpsc::Receiver<Seen>) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(opts, 100);
    let id = id.to_string();
    for f in filters {
        client.subscribe(*f, QoS::AtLeastOnce).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for n in conn.iter() {
            match n {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let s = Seen {
                        topic: p.topic.clone(),
                        payload: String::from_utf8_lossy(&p.payload).into(),
                        retain: p.retain,
                    };
                    if tx.send(s).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("test subscriber {id}: {e}; it stops here");
                    return;
                }
            }
        }
    });
    (client, rx)
}

/// Waits for a message on `topic` (with `payload`, if given).
fn wait_for(
    rx: &mpsc::Receiver<Seen>,
    topic: &str,
    payload: Option<&str>,
    seen: &mut Vec<Seen>,
) -> Seen {
    let end = Instant::now() + Duration::from_secs(60);
    if let Some(s) = seen
        .iter()
        .find(|s| s.topic == topic && payload.is_none_or(|p| s.payload == p))
    {
        return s.clone();
    }
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        let s = match rx.recv_timeout(left) {
            Ok(s) => s,
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the subscriber lost its broker before {topic} {payload:?}; seen: {seen:#?}")
            }
        };
        seen.push(s.clone());
        if s.topic == topic && payload.is_none_or(|p| s.payload == p) {
            return s;
        }
    }
    panic!("no {topic} {payload:?} within 60 s; seen: {seen:#?}");
}

fn config(dir: &Path, body: &str) -> String {
    let p = dir.join("impactd.toml");
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into()
}

/// Checks a discovery payload against what Home Assistant's MQTT schema requires of it.
fn check_discovery(s: &Seen) {
    assert!(s.retain, "discovery must be retained: {}", s.topic);
    let v: serde_json::Value = serde_json::from_str(&s.payload).unwrap();
    let component = s.topic.split('/').nth(1).unwrap();
    assert!(
        s.topic.starts_with("homeassistant/") && s.topic.ends_with("/config"),
        "{}",
        s.topic
    );
    assert!(matches!(component, "event" | "sensor"), "{}", s.topic);
    for key in [
        "name",
        "unique_id",
        "state_topic",
        "availability_topic",
        "device",
    ] {
        assert!(
            v[key].is_string() || v[key].is_object(),
            "{}: {key} missing in {v}",
            s.topic
        );
    }
    assert_eq!(v["payload_available"], "online");
    assert_eq!(v["payload_not_available"], "offline");
    assert_eq!(v["availability_topic"], "impactd/bench1/availability");
    let ids = v["device"]["identifiers"].as_array().unwrap();
    assert_eq!(ids[0], "impactd_bench1");
    assert!(v["device"]["name"].is_string());
    if component == "event" {
        assert_eq!(v["state_topic"], "impactd/bench1/events");
        let types: Vec<&str> = v["event_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(types, ["impact", "unseen_sound", "silent_impact"]);
    } else {
        assert_eq!(v["state_topic"], "impactd/bench1/state");
        let tpl = v["value_template"].as_str().unwrap();
        assert!(
            tpl.starts_with("{{ value_json.") && tpl.ends_with(" }}"),
            "{tpl}"
        );
        assert!(v["unit_of_measurement"].is_string());
    }
}

#[test]
fn events_discovery_and_the_last_will() {
    let broker = Broker::start("allow_anonymous true", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[mqtt]\ndevice = \"bench1\"\n");
    let (_sub, rx) = subscribe(broker.port, "test-sub", &["impactd/bench1/#"]);
    let mut seen = Vec::new();
    let mut d = Daemon::start(&[
        "replay",
        "--realtime",
        "--config",
        &cfg,
        "--mqtt",
        &broker.url(),
    ]);
    wait_for(
        &rx,
        "impactd/bench1/availability",
        Some("online"),
        &mut seen,
    );
    let first = wait_for(&rx, "impactd/bench1/events", None, &mut seen);
    assert!(!first.retain, "events are not retained");
    let e: serde_json::Value = serde_json::from_str(&first.payload).unwrap();
    assert_eq!(e["id"], 1);
    assert_eq!(e["kind"], "impact");
    assert_eq!(
        e["event_type"], "impact",
        "what Home Assistant's event entity reads"
    );

    // Discovery: retained, so a subscriber that comes later still gets it.
    let (_late, late_rx) = subscribe(broker.port, "test-late", &["homeassistant/#"]);
    let mut disc = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while disc.len() < 5 && Instant::now() < end {
        if let Ok(s) = late_rx.recv_timeout(Duration::from_millis(200)) {
            disc.push(s);
        }
    }
    assert_eq!(disc.len(), 5, "an event entity and four sensors: {disc:#?}");
    disc.iter().for_each(check_discovery);
    let state = wait_for(&rx, "impactd/bench1/state", None, &mut seen);
    let st: serde_json::Value = serde_json::from_str(&state.payload).unwrap();
    assert!(st["impacts_per_hour"].is_number(), "{st}");

    // Killed without a word: the broker publishes the last will.
    d.child.kill().unwrap();
    wait_for(
        &rx,
        "impactd/bench1/availability",
        Some("offline"),
        &mut seen,
    );
    let (_after, after_rx) = subscribe(broker.port, "test-after", &["impactd/bench1/availability"]);
    let retained = after_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (retained.payload.as_str(), retained.retain),
        ("offline", true)
    );
}

#[test]
fn every_event_arrives_and_a_clean_exit_says_offline() {
    let broker = Broker::start("allow_anonymous true", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[mqtt]\ndevice = \"bench1\"\n");
    let (_sub, rx) = subscribe(broker.port, "test-sub2", &["impactd/bench1/#"]);
    std::thread::sleep(Duration::from_millis(300)); // let the subscription land
    let d = Daemon::start(&[
        "replay",
        "--config",
        &cfg,
        "--mqtt",
        &broker.url(),
        "--linger",
        "1s",
    ]);
    let (code, out, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    let mut seen = Vec::new();
    wait_for(
        &rx,
        "impactd/bench1/availability",
        Some("offline"),
        &mut seen,
    );
    let published: Vec<serde_json::Value> = seen
        .iter()
        .filter(|s| s.topic == "impactd/bench1/events")
        .map(|s| serde_json::from_str(&s.payload).unwrap())
        .collect();
    let mut stdout = events(&out);
    for e in &mut stdout {
        e["event_type"] = e["kind"].clone();
    }
    assert_eq!(published.len(), SCENE_EVENTS, "{seen:#?}");
    assert_eq!(
        published, stdout,
        "the same events as stdout, with event_type"
    );
}

#[test]
fn refused_credentials_are_logged_and_retried_and_the_rest_keeps_running() {
    let pw_dir = tempfile::tempdir().unwrap();
    let passwd = pw_dir.path().join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["impactd", "right-password"])
        .status()
        .unwrap();
    assert!(st.success());
    let broker = Broker::start(
        &format!("allow_anonymous false\npassword_file {}", passwd.display()),
        |_| {},
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[mqtt]\ndevice = \"bench1\"\nusername = \"impactd\"\npassword_env = \"IMPACTD_TEST_MQTT_PASSWORD\"\n",
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_impactd"));
    c.args([
        "replay",
        "--realtime",
        "--config",
        &cfg,
        "--mqtt",
        &broker.url(),
    ]);
    c.env("IMPACTD_TEST_MQTT_PASSWORD", "wrong-secret-x9");
    let mut d = Daemon::from_command(c);
    d.wait_for("refused", Duration::from_secs(60));
    d.wait_for("retrying in 2s", Duration::from_secs(60));
    let (code, out, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    assert_eq!(events(&out).len(), SCENE_EVENTS, "events flowed to stdout");
    assert!(
        !err.contains("wrong-secret-x9"),
        "the password is never logged: {err}"
    );
}

#[test]
fn a_broker_that_vanishes_is_retried_and_events_keep_flowing() {
    let mut broker = Broker::start("allow_anonymous true", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[mqtt]\ndevice = \"bench1\"\n");
    let mut d = Daemon::start(&[
        "replay",
        "--realtime",
        "--config",
        &cfg,
        "--mqtt",
        &broker.url(),
    ]);
    d.wait_for("mqtt: connected", Duration::from_secs(60));
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    d.wait_for("retrying in", Duration::from_secs(60));
    let (code, out, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    assert_eq!(events(&out).len(), SCENE_EVENTS, "events flowed to stdout");
}

/// Runs openssl (package openssl) and panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed for the TLS test (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certs(dir: &Path) {
    let req = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    ];
    openssl(
        dir,
        &[
            &req[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=impactd-test-ca",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &req[..],
            &[
                "-keyout",
                "other-ca.key",
                "-out",
                "other-ca.pem",
                "-subj",
                "/CN=someone-else",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[test]
fn tls_with_the_right_ca_delivers_and_a_wrong_ca_is_refused_and_retried() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let broker = Broker::start(
        &format!(
            "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}",
            c("ca.pem"),
            c("server.pem"),
            c("server.key")
        ),
        |_| {},
    );
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let dir = tempfile::tempdir().unwrap();

    let cfg = config(
        dir.path(),
        &format!("[mqtt]\ndevice = \"bench1\"\ntls_ca = {:?}\n", c("ca.pem")),
    );
    let d = Daemon::start(&["replay", "--config", &cfg, "--mqtt", &url, "--linger", "1s"]);
    let (code, _, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("mqtt: connected to {url}")), "{err}");
    assert!(!err.contains("retrying"), "{err}");

    // A CA that did not sign the broker's certificate: refused, logged, retried; events flow.
    let cfg = config(
        dir.path(),
        &format!(
            "[mqtt]\ndevice = \"bench1\"\ntls_ca = {:?}\n",
            c("other-ca.pem")
        ),
    );
    let mut d = Daemon::start(&["replay", "--realtime", "--config", &cfg, "--mqtt", &url]);
    d.wait_for("retrying in 2s", Duration::from_secs(60));
    let (code, out, err) = d.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("mqtt: connected"), "{err}");
    assert_eq!(events(&out).len(), SCENE_EVENTS);
}
