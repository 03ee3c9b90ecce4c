//! Event streams for the outside world: HTTP (SSE, `/metrics`, `/healthz`, `/status`), MQTT
//! (with Home Assistant discovery) and evidence PNGs. One file per sink; this file is the
//! bounded-queue fan-out that feeds them.
//!
//! The pipeline thread only ever calls [`Streams`]'s `Sink` methods, which copy the message into
//! one bounded channel per sink and return: they never wait. Each sink runs on its own thread(s).
//! When a sink's queue is full, the **oldest** message in it is discarded and counted in
//! `impactd_sink_dropped_total{sink}` (a slow MQTT broker or PNG encoder loses old news, not the
//! newest). SSE clients have their own queues behind the HTTP sink, with the other policy: a
//! client that falls `client_queue` events behind is **disconnected** (counted in
//! `impactd_sse_clients_dropped_total`) and may resume with `Last-Event-ID`. One exception: in a
//! replay as fast as it goes (lossless, [`RunInfo::lossless`]) the evidence queue waits for room,
//! as replay's decoders do, so PNGs and clips never miss rows or frames.
//!
//! [`build`] makes every configured sink from the config and the run's [`Health`]; `replay`
//! and `run` both call it and pass [`Streams`] to the engine as one more `Sink`.

pub mod evidence;
pub mod http;
pub mod metrics;
pub mod mqtt;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::config::RawConfig;
use crate::events::{Event, FrameRow, Sink};
use crate::health::Health;
use crate::media::Image;

/// What the pipeline hands a sink thread.
#[derive(Debug, Clone)]
pub enum Msg {
    Event(Arc<Event>),
    Row(FrameRow),
    Image(u64, Arc<Image>),
    /// A block of audio (rate, samples), for clips.
    Audio(u32, Arc<[f32]>),
    /// End of the stream: write whatever waits for more frames.
    Flush,
}

/// Counters the sinks write (lock-free) and `/metrics` reads; the pipeline's own are in
/// [`Health`].
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Messages discarded from a full sink queue (drop oldest), per sink: http, mqtt, evidence.
    pub dropped_http: AtomicU64,
    pub dropped_mqtt: AtomicU64,
    pub dropped_evidence: AtomicU64,
    /// SSE clients connected now, and those disconnected for falling behind.
    pub sse_clients: AtomicU64,
    pub sse_clients_dropped: AtomicU64,
    /// SSE resumes that asked for events older than the history (told so in the stream).
    pub sse_history_overflows: AtomicU64,
    /// 1 while connected to the broker.
    pub mqtt_connected: AtomicU64,
    pub mqtt_reconnects: AtomicU64,
    pub mqtt_published: AtomicU64,
    /// Evidence PNGs written, and skipped (write failed: full disk, no permission, ...).
    pub evidence_written: AtomicU64,
    pub evidence_skipped: AtomicU64,
}

/// Everything the status page and MQTT describe about this run.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The model's summary line.
    pub model: String,
    /// Inference backend name.
    pub backend: String,
    /// "replay" or "run".
    pub mode: String,
    /// A replay as fast as it goes: the evidence queue then waits instead of dropping, like
    /// replay's own queues (replay is lossless, so its PNGs and clips are complete). Live
    /// capture and `--realtime` leave it false: nothing may hold up the pipeline.
    pub lossless: bool,
}

/// A sink setup problem: the message names the key or address.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("http.bind = {addr:?}: {reason}")]
    HttpBind { addr: String, reason: String },
    #[error("mqtt: {0}")]
    Mqtt(String),
    #[error("evidence.dir {dir}: {source}")]
    Evidence {
        dir: std::path::PathBuf,
        source: io::Error,
    },
    #[error("starting a sink thread: {0}")]
    Thread(io::Error),
}

/// Range checks of `[http]`, `[mqtt]`, `[evidence]` (called by [`RawConfig::check`]).
pub fn check_config(cfg: &RawConfig) -> Result<(), String> {
    if cfg.http.enabled && cfg.http.bind.parse::<SocketAddr>().is_err() {
        return Err(format!(
            "http.bind = {:?} is not an address:port such as \"127.0.0.1:9464\"",
            cfg.http.bind
        ));
    }
    for (key, v) in [
        ("http.history", cfg.http.history),
        ("http.client_queue", cfg.http.client_queue),
        ("http.max_clients", cfg.http.max_clients),
        ("mqtt.queue", cfg.mqtt.queue),
    ] {
        if v == 0 {
            return Err(format!("{key} = 0: must be at least 1"));
        }
    }
    if !cfg.mqtt.url.is_empty() {
        let b = mqtt::Broker::parse(&cfg.mqtt.url).map_err(|e| format!("mqtt.url: {e}"))?;
        if b.tls && cfg.mqtt.tls_ca.as_os_str().is_empty() {
            return Err(format!(
                "mqtt.url = {:?} uses TLS: set mqtt.tls_ca to the broker's CA certificate (PEM; /etc/ssl/certs/ca-certificates.crt for a public CA)",
                cfg.mqtt.url
            ));
        }
    }
    if cfg.mqtt.keep_alive < Duration::from_secs(1) {
        return Err("mqtt.keep_alive must be at least 1s".into());
    }
    if !cfg.mqtt.device.is_empty() && !mqtt::valid_device(&cfg.mqtt.device) {
        return Err(format!(
            "mqtt.device = {:?}: use letters, digits, '-' and '_' only (it is part of topics and ids)",
            cfg.mqtt.device
        ));
    }
    Ok(())
}

/// One sink's queue: the pipeline's end.
struct Outlet {
    tx: Sender<Msg>,
    /// The same channel's receiving end, to discard the oldest message when it is full.
    oldest: Receiver<Msg>,
    dropped: &'static str,
    rows: bool,
    images: bool,
    audio: bool,
    /// Wait for room instead of dropping the oldest (evidence in a lossless replay).
    block: bool,
}

/// The configured sinks as one [`Sink`] for the engine. Never blocks.
pub struct Streams {
    outlets: Vec<Outlet>,
    stats: Arc<SinkStats>,
    threads: Vec<(&'static str, JoinHandle<()>)>,
    http: Option<http::Server>,
    mqtt: Option<mqtt::Mqtt>,
}

/// Creates a bounded channel for a sink.
fn channel(cap: usize) -> (Sender<Msg>, Receiver<Msg>) {
    bounded(cap.max(1))
}

impl Streams {
    /// No sinks at all (nothing configured).
    pub fn is_empty(&self) -> bool {
        self.outlets.is_empty() && self.http.is_none()
    }

    /// The HTTP server's address, once bound (port 0 becomes the real port).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.addr())
    }

    /// Counters of the sinks.
    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
    }

    fn push(&self, msg: Msg, want: impl Fn(&Outlet) -> bool) {
        for o in self.outlets.iter().filter(|o| want(o)) {
            let mut m = msg.clone();
            if o.block {
                let _ = o.tx.send(m); // Err: the sink has stopped
                continue;
            }
            loop {
                match o.tx.try_send(m) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) => {
                        // Drop oldest: make room, count, try again.
                        if o.oldest.try_recv().is_ok() {
                            self.count_drop(o.dropped);
                        }
                        m = back;
                    }
                    Err(TrySendError::Disconnected(_)) => break, // the sink has stopped
                }
            }
        }
    }

    fn count_drop(&self, sink: &str) {
        let c = match sink {
            "http" => &self.stats.dropped_http,
            "mqtt" => &self.stats.dropped_mqtt,
            _ => &self.stats.dropped_evidence,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends the stream: the sinks finish what they hold (evidence PNGs), the HTTP server keeps
    /// answering for `linger` (so a replay's results can still be fetched), MQTT says `offline`.
    pub fn shutdown(mut self, linger: Duration) {
        self.push(Msg::Flush, |_| true);
        self.outlets.clear(); // closes the queues: the sink threads drain them and end
        for (name, t) in self.threads.drain(..) {
            if t.join().is_err() {
                log::error!("the {name} sink thread panicked");
            }
        }
        if !linger.is_zero() && (self.http.is_some() || self.mqtt.is_some()) {
            log::info!("streams: lingering {linger:?} before shutting down");
            std::thread::sleep(linger);
        }
        if let Some(m) = self.mqtt.take() {
            m.shutdown();
        }
        if let Some(h) = self.http.take() {
            h.shutdown();
        }
    }
}

impl Sink for Streams {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.push(Msg::Event(Arc::new(event.clone())), |_| true);
        Ok(())
    }
    fn frame(&mut self, row: &FrameRow) -> io::Result<()> {
        self.push(Msg::Row(*row), |o| o.rows);
        Ok(())
    }
    fn image(&mut self, index: u64, image: &Image) -> io::Result<()> {
        if self.outlets.iter().any(|o| o.images) {
            let small = Arc::new(evidence::thumbnail(image));
            self.push(Msg::Image(index, small), |o| o.images);
        }
        Ok(())
    }
    fn audio(&mut self, rate: u32, samples: &[f32]) -> io::Result<()> {
        if self.outlets.iter().any(|o| o.audio) {
            self.push(Msg::Audio(rate, samples.into()), |o| o.audio);
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.push(Msg::Flush, |o| o.rows);
        Ok(())
    }
}

/// Builds every sink `cfg` enables (`[http]`, `[mqtt]`, `[evidence]`), sharing `health`.
/// Fails before anything runs when an address is taken or a directory cannot be made.
pub fn build(cfg: &RawConfig, health: Arc<Health>, info: RunInfo) -> Result<Streams, SinkError> {
    let stats = Arc::new(SinkStats::default());
    let mut s = Streams {
        outlets: Vec::new(),
        stats: stats.clone(),
        threads: Vec::new(),
        http: None,
        mqtt: None,
    };
    let plots = evidence::PlotIndex::default();
    if !cfg.evidence.dir.as_os_str().is_empty() {
        let (tx, rx) = channel(evidence::QUEUE);
        let writer = evidence::Writer::new(&cfg.evidence, stats.clone(), plots.clone()).map_err(
            |source| SinkError::Evidence {
                dir: cfg.evidence.dir.clone(),
                source,
            },
        )?;
        let rx_thread = rx.clone();
        let t = std::thread::Builder::new()
            .name("evidence".into())
            .spawn(move || writer.run(rx_thread))
            .map_err(SinkError::Thread)?;
        s.outlets.push(Outlet {
            tx,
            oldest: rx,
            dropped: "evidence",
            rows: true,
            images: true,
            audio: cfg.evidence.clips,
            block: info.lossless,
        });
        s.threads.push(("evidence", t));
    }
    if cfg.http.enabled {
        let (tx, rx) = channel(cfg.http.client_queue.max(64));
        let server = http::Server::start(
            &cfg.http,
            health.clone(),
            stats.clone(),
            info.clone(),
            plots.clone(),
            rx.clone(),
        )?;
        log::info!("http: listening on http://{}", server.addr());
        s.outlets.push(Outlet {
            tx,
            oldest: rx,
            dropped: "http",
            rows: false,
            images: false,
            audio: false,
            block: false,
        });
        s.http = Some(server);
    }
    if !cfg.mqtt.url.is_empty() {
        let (tx, rx) = channel(cfg.mqtt.queue);
        let m = mqtt::Mqtt::start(&cfg.mqtt, health.clone(), stats.clone(), info, rx.clone())?;
        s.outlets.push(Outlet {
            tx,
            oldest: rx,
            dropped: "mqtt",
            rows: false,
            images: false,
            audio: false,
            block: false,
        });
        s.mqtt = Some(m);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_full_queue_drops_its_oldest_message_and_counts_it() {
        let (tx, rx) = channel(2);
        let stats = Arc::new(SinkStats::default());
        let mut s = Streams {
            outlets: vec![Outlet {
                tx,
                oldest: rx.clone(),
                dropped: "mqtt",
                rows: false,
                images: false,
                audio: false,
                block: false,
            }],
            stats: stats.clone(),
            threads: Vec::new(),
            http: None,
            mqtt: None,
        };
        let row = |k| FrameRow {
            frame: k,
            t: 0.0,
            predicted: 0.0,
            observed: 0.0,
            observed_raw: 0.0,
        };
        // Rows do not go to a sink that does not want them.
        s.frame(&row(0)).unwrap();
        assert!(rx.is_empty());
        for k in 1..=5 {
            s.push(Msg::Row(row(k)), |_| true);
        }
        assert_eq!(stats.dropped_mqtt.load(Ordering::Relaxed), 3);
        let kept: Vec<u64> = rx
            .try_iter()
            .map(|m| match m {
                Msg::Row(r) => r.frame,
                _ => panic!(),
            })
            .collect();
        assert_eq!(kept, [4, 5], "the newest stay");
    }

    #[test]
    fn stream_config_errors_name_the_key() {
        for (text, key) in [
            (
                "[http]\nenabled = true\nbind = \"localhost\"\n",
                "http.bind",
            ),
            ("[http]\nhistory = 0\n", "http.history"),
            ("[http]\nclient_queue = 0\n", "http.client_queue"),
            ("[http]\nstall = \"soon\"\n", "soon"),
            ("[mqtt]\nurl = \"tcp://x\"\n", "mqtt.url"),
            ("[mqtt]\nurl = \"mqtts://x\"\n", "mqtt.tls_ca"),
            ("[mqtt]\ndevice = \"a/b\"\n", "mqtt.device"),
            ("[mqtt]\nqueue = 0\n", "mqtt.queue"),
            ("[mqtt]\npasword_file = \"x\"\n", "pasword_file"),
            ("[evidence]\nkinds = [\"boom\"]\n", "boom"),
            ("[evidence]\nmax_age = \"7\"\n", "max_age"),
        ] {
            let e = RawConfig::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("c.toml"), "{text:?}: {e}");
        }
    }
}
