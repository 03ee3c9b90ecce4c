//! MQTT with `rumqttc`'s synchronous client (its tokio runtime stays inside the crate).
//!
//! Topics, with `D` = `mqtt.device`:
//! - `impactd/D/events`: each event as JSON (the JSON Lines object plus `event_type` = `kind`,
//!   which Home Assistant's event entity reads), QoS 1, not retained.
//! - `impactd/D/availability`: `online` (retained) after each connection; the last will, set at
//!   connect, is `offline` (retained), so the broker says so when the board vanishes; a clean
//!   shutdown publishes `offline` itself.
//! - `impactd/D/state`: every 10 s, retained: audio level (dBFS) and event rates (per hour, over
//!   the last hour).
//! - Home Assistant discovery (retained, under `mqtt.discovery_prefix`): one device `impactd D`
//!   with an event entity (`impact`, `unseen_sound`, `silent_impact`) and sensors for the audio
//!   level and the three event rates.
//!
//! Two threads: the *connection* thread drives rumqttc's event loop and reconnects with
//! exponential backoff (1 s doubling to 30 s) after any error (refused credentials, broker
//! gone), logging each failure; the *publisher* thread takes events from the sink's bounded
//! queue (drop oldest when full, counted). The password is read once from a file or the
//! environment and is never logged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rumqttc::{
    Client, ConnectReturnCode, Event as MqttEvent, LastWill, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use serde_json::json;

use super::{Msg, RunInfo, SinkError, SinkStats};
use crate::config::MqttConfig;
use crate::detector::Kind;
use crate::health::Health;

/// Requests rumqttc buffers while the connection is down, before `publish` waits.
const CLIENT_CAP: usize = 64;
/// Between two state messages.
const STATE_EVERY: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A parsed `mqtt.url`.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Broker {
    /// `mqtt://HOST[:PORT]` (default 1883) or `mqtts://HOST[:PORT]` (8883).
    pub fn parse(url: &str) -> Result<Broker, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(format!(
                "{url:?} must start with mqtt:// or mqtts:// (e.g. mqtt://192.168.1.10:1883)"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse()
                    .map_err(|_| format!("{url:?}: port {p:?} is not a number 1..65535"))?,
            ),
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(format!(
                "{url:?}: expected mqtt://HOST[:PORT] (user and password go in [mqtt], not the URL)"
            ));
        }
        Ok(Broker {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// Letters, digits, `-` and `_`: safe in topics and Home Assistant ids.
pub fn valid_device(d: &str) -> bool {
    !d.is_empty()
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The host name made safe as a device id.
fn default_device() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let d: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if d.is_empty() { "impactd".into() } else { d }
}

/// The topics of one device.
#[derive(Debug, Clone)]
pub struct Topics {
    pub device: String,
    pub events: String,
    pub availability: String,
    pub state: String,
}

impl Topics {
    pub fn new(device: &str) -> Topics {
        Topics {
            device: device.into(),
            events: format!("impactd/{device}/events"),
            availability: format!("impactd/{device}/availability"),
            state: format!("impactd/{device}/state"),
        }
    }
}

/// Home Assistant discovery messages: (topic, JSON payload), all to be retained.
pub fn discovery(prefix: &str, t: &Topics) -> Vec<(String, serde_json::Value)> {
    let dev = &t.device;
    let node = format!("impactd_{dev}");
    let device = json!({
        "identifiers": [node],
        "name": format!("impactd {dev}"),
        "manufacturer": "impactd",
        "model": "impactd (camera + microphone impact detector)",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let common = |name: &str, id: &str| {
        json!({
            "name": name,
            "unique_id": format!("{node}_{id}"),
            "availability_topic": t.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        })
    };
    let mut out = Vec::new();
    let mut ev = common("Impact", "impact");
    ev["state_topic"] = json!(t.events);
    ev["event_types"] = json!(["impact", "unseen_sound", "silent_impact"]);
    ev["qos"] = json!(1);
    ev["icon"] = json!("mdi:gesture-tap");
    out.push((format!("{prefix}/event/{node}/impact/config"), ev));
    let sensors = [
        (
            "Audio level",
            "audio_level",
            "audio_level_dbfs",
            "dBFS",
            "mdi:microphone",
        ),
        (
            "Impacts per hour",
            "impact_rate",
            "impacts_per_hour",
            "events/h",
            "mdi:chart-line",
        ),
        (
            "Unseen sounds per hour",
            "unseen_sound_rate",
            "unseen_sounds_per_hour",
            "events/h",
            "mdi:ear-hearing",
        ),
        (
            "Silent impacts per hour",
            "silent_impact_rate",
            "silent_impacts_per_hour",
            "events/h",
            "mdi:volume-off",
        ),
    ];
    for (name, id, key, unit, icon) in sensors {
        let mut s = common(name, id);
        s["state_topic"] = json!(t.state);
        s["value_template"] = json!(format!("{{{{ value_json.{key} }}}}"));
        s["unit_of_measurement"] = json!(unit);
        s["state_class"] = json!("measurement");
        s["icon"] = json!(icon);
        out.push((format!("{prefix}/sensor/{node}/{id}/config"), s));
    }
    out
}

/// The running MQTT sink.
pub struct Mqtt {
    client: Client,
    topics: Topics,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn password(cfg: &MqttConfig) -> Result<Option<String>, SinkError> {
    if !cfg.password_file.as_os_str().is_empty() {
        let text = std::fs::read_to_string(&cfg.password_file).map_err(|e| {
            SinkError::Mqtt(format!(
                "mqtt.password_file {}: {e}",
                cfg.password_file.display()
            ))
        })?;
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    if !cfg.password_env.is_empty() {
        return std::env::var(&cfg.password_env).map(Some).map_err(|_| {
            SinkError::Mqtt(format!(
                "mqtt.password_env: the environment variable {} is not set",
                cfg.password_env
            ))
        });
    }
    Ok(None)
}

impl Mqtt {
    /// Starts connecting (in the background: a broker that is down is retried, not fatal) and
    /// publishing what arrives on `events`.
    pub fn start(
        cfg: &MqttConfig,
        health: Arc<Health>,
        stats: Arc<SinkStats>,
        _info: RunInfo,
        events: Receiver<Msg>,
    ) -> Result<Mqtt, SinkError> {
        let broker =
            Broker::parse(&cfg.url).map_err(|e| SinkError::Mqtt(format!("mqtt.url: {e}")))?;
        let device = if cfg.device.is_empty() {
            default_device()
        } else {
            cfg.device.clone()
        };
        let topics = Topics::new(&device);
        let mut opts = MqttOptions::new(format!("impactd-{device}"), &broker.host, broker.port);
        opts.set_keep_alive(cfg.keep_alive);
        opts.set_last_will(LastWill::new(
            &topics.availability,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if !cfg.username.is_empty() {
            opts.set_credentials(&cfg.username, password(cfg)?.unwrap_or_default());
        } else if password(cfg)?.is_some() {
            return Err(SinkError::Mqtt(
                "a password is configured but mqtt.username is empty".into(),
            ));
        }
        if broker.tls {
            if cfg.tls_ca.as_os_str().is_empty() {
                return Err(SinkError::Mqtt(format!(
                    "mqtt.url {} uses TLS: set mqtt.tls_ca to the broker's CA certificate (PEM; /etc/ssl/certs/ca-certificates.crt for a public CA)",
                    cfg.url
                )));
            }
            let ca = std::fs::read(&cfg.tls_ca).map_err(|e| {
                SinkError::Mqtt(format!("mqtt.tls_ca {}: {e}", cfg.tls_ca.display()))
            })?;
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            }));
        }
        let (client, mut connection) = Client::new(opts, CLIENT_CAP);
        let stop = Arc::new(AtomicBool::new(false));
        let announce = Arc::new(AtomicBool::new(false));
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(SinkError::Thread)
        };

        let (st, stop2, ann, url) = (
            stats.clone(),
            stop.clone(),
            announce.clone(),
            cfg.url.clone(),
        );
        let conn = spawn(
            "mqtt-conn",
            Box::new(move || {
                let mut backoff = Duration::from_secs(1);
                for n in connection.iter() {
                    match n {
                        Ok(MqttEvent::Incoming(Packet::ConnAck(ack)))
                            if ack.code == ConnectReturnCode::Success =>
                        {
                            log::info!("mqtt: connected to {url}");
                            st.mqtt_connected.store(1, Ordering::Relaxed);
                            backoff = Duration::from_secs(1);
                            ann.store(true, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            st.mqtt_connected.store(0, Ordering::Relaxed);
                            if stop2.load(Ordering::Relaxed) {
                                break;
                            }
                            st.mqtt_reconnects.fetch_add(1, Ordering::Relaxed);
                            let why = match &e {
                                rumqttc::ConnectionError::ConnectionRefused(code) => {
                                    format!(
                                        "the broker refused the connection ({code:?}): check mqtt.username and the password"
                                    )
                                }
                                other => other.to_string(),
                            };
                            log::warn!("mqtt: {url}: {why}; retrying in {}s", backoff.as_secs());
                            let until = Instant::now() + backoff;
                            while Instant::now() < until && !stop2.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            if stop2.load(Ordering::Relaxed) {
                                break;
                            }
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                }
            }),
        )?;

        let prefix = cfg.discovery_prefix.clone();
        let (c, t, stop3) = (client.clone(), topics.clone(), stop.clone());
        let publisher = spawn(
            "mqtt-pub",
            Box::new(move || {
                Publisher {
                    client: c,
                    topics: t,
                    prefix,
                    health,
                    stats,
                    announce,
                    stop: stop3,
                    recent: VecDeque::new(),
                }
                .run(events)
            }),
        )?;
        Ok(Mqtt {
            client,
            topics,
            stop,
            threads: vec![publisher, conn],
        })
    }

    /// The topics in use.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Publishes `offline`, disconnects, and stops both threads (waiting at most 2 s for the
    /// broker to take the last messages).
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(2);
        let wait = |t: &JoinHandle<()>| {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // The publisher ends when its queue closes (already) or at `stop` while retrying.
        wait(&self.threads[0]);
        let _ =
            self.client
                .try_publish(&self.topics.availability, QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        wait(&self.threads[1]);
        if self.threads.iter().any(|t| !t.is_finished()) {
            log::warn!("mqtt: the broker did not confirm the disconnect within 2 s");
        }
    }
}

struct Publisher {
    client: Client,
    topics: Topics,
    prefix: String,
    health: Arc<Health>,
    stats: Arc<SinkStats>,
    announce: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// (when, kind) of the events of the last hour, for the rates.
    recent: VecDeque<(Instant, Kind)>,
}

impl Publisher {
    fn run(mut self, events: Receiver<Msg>) {
        let mut next_state = Instant::now();
        loop {
            if self.announce.swap(false, Ordering::Relaxed) {
                self.announce_online();
                next_state = Instant::now();
            }
            if Instant::now() >= next_state {
                self.publish_state();
                next_state = Instant::now() + STATE_EVERY;
            }
            match events.recv_timeout(Duration::from_millis(200)) {
                Ok(Msg::Event(e)) => {
                    // The JSON line as it is (to_value would widen its f32s to f64 noise),
                    // with `event_type` first.
                    let Ok(line) = serde_json::to_string(&*e) else {
                        continue;
                    };
                    let payload =
                        format!("{{\"event_type\":\"{}\",{}", e.kind.as_str(), &line[1..]);
                    if self.recent.len() == 100_000 {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((Instant::now(), e.kind));
                    // Waits while rumqttc's own buffer is full (broker down): our queue then
                    // fills and the pipeline drops the oldest, counted.
                    loop {
                        let r = self.client.try_publish(
                            &self.topics.events,
                            QoS::AtLeastOnce,
                            false,
                            payload.clone(),
                        );
                        if r.is_ok() {
                            self.stats.mqtt_published.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        if self.stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.publish_state();
                    return;
                }
            }
        }
    }

    fn announce_online(&self) {
        if !self.prefix.is_empty() {
            for (topic, payload) in discovery(&self.prefix, &self.topics) {
                let _ = self
                    .client
                    .publish(topic, QoS::AtLeastOnce, true, payload.to_string());
            }
        }
        let _ = self
            .client
            .publish(&self.topics.availability, QoS::AtLeastOnce, true, "online");
    }

    fn publish_state(&mut self) {
        let hour = Duration::from_secs(3600);
        while self.recent.front().is_some_and(|(t, _)| t.elapsed() > hour) {
            self.recent.pop_front();
        }
        // Per hour, over the last hour (or the time since start, if shorter, at least a minute).
        let span = self.health.uptime().clamp(Duration::from_secs(60), hour);
        let rate = |k: Kind| {
            let n = self.recent.iter().filter(|(_, kind)| *kind == k).count() as f64;
            (n * 3600.0 / span.as_secs_f64() * 10.0).round() / 10.0
        };
        let state = json!({
            "audio_level_dbfs": self.health.audio.level_dbfs().map(|d| (d * 10.0).round() / 10.0),
            "impacts_per_hour": rate(Kind::Impact),
            "unseen_sounds_per_hour": rate(Kind::UnseenSound),
            "silent_impacts_per_hour": rate(Kind::SilentImpact),
        });
        let _ =
            self.client
                .try_publish(&self.topics.state, QoS::AtMostOnce, true, state.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            Broker::parse("mqtt://10.0.0.2").unwrap(),
            Broker {
                host: "10.0.0.2".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(
            Broker::parse("mqtts://broker.lan:8884/").unwrap(),
            Broker {
                host: "broker.lan".into(),
                port: 8884,
                tls: true
            }
        );
        for bad in [
            "10.0.0.2:1883",
            "http://x",
            "mqtt://",
            "mqtt://h:port",
            "mqtt://u:p@h",
        ] {
            assert!(Broker::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn discovery_names_one_device_with_an_event_entity_and_four_sensors() {
        let d = discovery("homeassistant", &Topics::new("bench1"));
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].0, "homeassistant/event/impactd_bench1/impact/config");
        assert!(
            d.iter()
                .all(|(_, v)| v["device"]["identifiers"][0] == "impactd_bench1")
        );
        assert_eq!(
            d[1].1["value_template"],
            "{{ value_json.audio_level_dbfs }}"
        );
    }
}
