//! The HTTP server (`tiny_http`, synchronous, on its own threads):
//!
//! | path | answer |
//! |---|---|
//! | `GET /events` | Server-Sent Events, one per message, `id:` = the event id. `Last-Event-ID: N` (or `?since=N`) first replays the events after N from the in-memory history (`http.history` events) |
//! | `GET /events/{id}/plot.png` | the evidence PNG of event `id` (when `[evidence]` wrote one) |
//! | `GET /metrics` | Prometheus text format (see `metrics.rs`) |
//! | `GET /healthz` | `200 ok`, or `503` and the reason (a source down or stalled, processing stalled) |
//! | `GET /status` | JSON: sources, model, backend, uptime, counters, last event |
//!
//! A resume from further back than the history holds first gets an `event: overflow` message
//! saying what was lost (`{"requested_after":N,"oldest_available":M,"missed":K}`), never a
//! silent gap. Each SSE client has a writer thread and a queue of `http.client_queue` events;
//! a client that falls that far behind is disconnected (and counted), so a client that never
//! reads stalls nobody else, and its connection ends when a write has waited
//! [`SEND_TIMEOUT`]. Keep-alive comments every 15 s find dead connections.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use tiny_http::{Header, Method, Request, Response};

use super::evidence::PlotIndex;
use super::metrics::Metrics;
use super::{Msg, RunInfo, SinkError, SinkStats};
use crate::config::HttpConfig;
use crate::events::Event;
use crate::health::Health;

/// Time between keep-alive comments on an idle SSE stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// A write that cannot go out for this long ends its connection: an SSE client that stopped
/// reading frees its thread and slot. Set on the listening socket, inherited by every
/// accepted one (tiny_http does not expose its sockets).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// An idle keep-alive connection is closed after this.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// Binds `addr` with [`SEND_TIMEOUT`] and [`RECV_TIMEOUT`] on the listening socket, so that the
/// connections it accepts inherit them (Linux copies the socket's options on accept).
pub fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::AsRawFd;
    let l = std::net::TcpListener::bind(addr)?;
    for (opt, d) in [
        (libc::SO_SNDTIMEO, SEND_TIMEOUT),
        (libc::SO_RCVTIMEO, RECV_TIMEOUT),
    ] {
        let tv = libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: a valid socket fd and a timeval of the size passed.
        let r = unsafe {
            libc::setsockopt(
                l.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(l)
}

/// Events kept for resuming clients, and the connected clients' queues.
struct HubState {
    history: VecDeque<(u64, Arc<str>)>,
    clients: Vec<Sender<Arc<str>>>,
    last_event: Option<Arc<Event>>,
}

struct Hub {
    state: Mutex<HubState>,
    history: usize,
    client_queue: usize,
    max_clients: usize,
    stats: Arc<SinkStats>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic elsewhere cannot leave this state half-updated in a harmful way.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One event from the pipeline: into the history and every client's queue.
    fn publish(&self, e: &Arc<Event>) {
        let json = match serde_json::to_string(&**e) {
            Ok(j) => j,
            Err(err) => {
                log::error!("http: event {} not serialisable: {err}", e.id);
                return;
            }
        };
        let msg: Arc<str> = format!("id: {}\ndata: {json}\n\n", e.id).into();
        let mut st = self.lock();
        st.history.push_back((e.id, msg.clone()));
        while st.history.len() > self.history {
            st.history.pop_front();
        }
        st.last_event = Some(e.clone());
        let stats = &self.stats;
        st.clients.retain(|c| match c.try_send(msg.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                stats.sse_clients_dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "http: an SSE client fell {} events behind: disconnected",
                    self.client_queue
                );
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Registers a client resuming after `since`; returns what it must be sent first and its queue.
    fn subscribe(&self, since: Option<u64>) -> (Vec<Arc<str>>, Receiver<Arc<str>>) {
        let (tx, rx) = bounded(self.client_queue);
        let mut st = self.lock();
        let mut first = Vec::new();
        if let Some(n) = since {
            let newest = st.last_event.as_ref().map_or(0, |e| e.id);
            let oldest = st.history.front().map_or(newest + 1, |h| h.0);
            if n > newest {
                self.stats
                    .sse_history_overflows
                    .fetch_add(1, Ordering::Relaxed);
                first.push(Arc::from(format!(
                    "event: overflow\ndata: {{\"requested_after\":{n},\"newest\":{newest},\"reason\":\"unknown id: the daemon restarted and numbers events from 1 again\"}}\n\n"
                )));
                first.extend(st.history.iter().map(|h| h.1.clone()));
            } else {
                if n + 1 < oldest {
                    self.stats
                        .sse_history_overflows
                        .fetch_add(1, Ordering::Relaxed);
                    first.push(Arc::from(format!(
                        "event: overflow\ndata: {{\"requested_after\":{n},\"oldest_available\":{oldest},\"missed\":{}}}\n\n",
                        oldest - n - 1
                    )));
                }
                first.extend(st.history.iter().filter(|h| h.0 > n).map(|h| h.1.clone()));
            }
        }
        st.clients.push(tx);
        (first, rx)
    }
}

/// The running server. [`Server::shutdown`] stops it.
pub struct Server {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    hub: Arc<Hub>,
    threads: Vec<JoinHandle<()>>,
}

struct Ctx {
    hub: Arc<Hub>,
    health: Arc<Health>,
    metrics: Metrics,
    info: RunInfo,
    plots: PlotIndex,
    stall: Duration,
}

impl Server {
    /// Binds `cfg.bind` (an address in use is an error naming it) and starts serving; events
    /// arrive on `events`.
    pub fn start(
        cfg: &HttpConfig,
        health: Arc<Health>,
        stats: Arc<SinkStats>,
        info: RunInfo,
        plots: PlotIndex,
        events: Receiver<Msg>,
    ) -> Result<Server, SinkError> {
        let bind_err = |reason: String| SinkError::HttpBind {
            addr: cfg.bind.clone(),
            reason,
        };
        let addr: SocketAddr = cfg
            .bind
            .parse()
            .map_err(|e| bind_err(format!("not an address:port ({e})")))?;
        let listener = listen(addr).map_err(|e| bind_err(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| bind_err(e.to_string()))?;
        let server = Arc::new(
            tiny_http::Server::from_listener(listener, None)
                .map_err(|e| bind_err(e.to_string()))?,
        );
        let hub = Arc::new(Hub {
            state: Mutex::new(HubState {
                history: VecDeque::with_capacity(cfg.history.min(4096)),
                clients: Vec::new(),
                last_event: None,
            }),
            history: cfg.history,
            client_queue: cfg.client_queue,
            max_clients: cfg.max_clients,
            stats: stats.clone(),
        });
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(SinkError::Thread)
        };
        let h = hub.clone();
        let feeder = spawn(
            "http-hub",
            Box::new(move || {
                for m in events {
                    if let Msg::Event(e) = m {
                        h.publish(&e);
                    }
                }
            }),
        )?;
        let ctx = Ctx {
            hub: hub.clone(),
            metrics: Metrics::new(health.clone(), stats),
            health,
            info,
            plots,
            stall: cfg.stall,
        };
        let s = server.clone();
        let acceptor = spawn(
            "http",
            Box::new(move || {
                for req in s.incoming_requests() {
                    handle(&ctx, req);
                }
            }),
        )?;
        Ok(Server {
            addr,
            server,
            hub,
            threads: vec![feeder, acceptor],
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every SSE stream and stops serving.
    pub fn shutdown(self) {
        self.hub.lock().clients.clear();
        self.server.unblock();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    // Only called with constant, valid ASCII names and values.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn text(status: u16, body: impl Into<String>) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn json(status: u16, v: &serde_json::Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(v.to_string())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
}

fn handle(ctx: &Ctx, req: Request) {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let known =
        matches!(path, "/events" | "/metrics" | "/healthz" | "/status") || plot_id(path).is_some();
    if !matches!(req.method(), Method::Get | Method::Head) {
        let r = if known {
            text(405, "only GET is served here\n").with_header(header("Allow", "GET, HEAD"))
        } else {
            text(404, format!("no such path: {path}\n"))
        };
        let _ = req.respond(r);
        return;
    }
    let result = match path {
        "/events" => return sse(ctx, req, query),
        "/metrics" => req.respond(
            Response::from_string(ctx.metrics.render())
                .with_header(header("Content-Type", Metrics::CONTENT_TYPE)),
        ),
        "/healthz" => match ctx.health.problem(ctx.stall) {
            None => req.respond(text(200, "ok\n")),
            Some(p) => req.respond(text(503, format!("{p}\n"))),
        },
        "/status" => req.respond(json(200, &status(ctx))),
        _ => match plot_id(path) {
            Some(Ok(id)) => match ctx.plots.get(id).map(std::fs::read) {
                Some(Ok(png)) => req.respond(
                    Response::from_data(png).with_header(header("Content-Type", "image/png")),
                ),
                Some(Err(e)) => req.respond(text(404, format!("the plot of event {id} is gone: {e}\n"))),
                None => req.respond(text(
                    404,
                    format!("no plot for event {id}: evidence is off, its kind is not in evidence.kinds, it is not written yet, or it was deleted\n"),
                )),
            },
            Some(Err(bad)) => req.respond(text(400, format!("{bad:?} is not an event id\n"))),
            None => req.respond(text(
                404,
                format!("no such path: {path} (try /events, /events/ID/plot.png, /metrics, /healthz, /status)\n"),
            )),
        },
    };
    if let Err(e) = result {
        log::debug!("http: answering {path}: {e}");
    }
}

/// `/events/{id}/plot.png` -> Some(Ok(id)); a bad id -> Some(Err(text)).
fn plot_id(path: &str) -> Option<Result<u64, String>> {
    let id = path.strip_prefix("/events/")?.strip_suffix("/plot.png")?;
    Some(id.parse().map_err(|_| id.to_string()))
}

fn status(ctx: &Ctx) -> serde_json::Value {
    let h = &ctx.health;
    let st = &ctx.hub.stats;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let problem = h.problem(ctx.stall);
    // Through its JSON text: as a Value directly, its f32s would widen to f64 noise.
    let last = ctx.hub.lock().last_event.clone();
    let last: Option<serde_json::Value> = last
        .and_then(|e| serde_json::to_string(&*e).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": ctx.info.mode,
        "model": ctx.info.model,
        "backend": ctx.info.backend,
        "uptime_s": h.uptime().as_secs_f64(),
        "healthy": problem.is_none(),
        "problem": problem,
        "sources": [h.video.snapshot(), h.audio.snapshot()],
        "counters": {
            "frames_processed": get(&h.frames_processed),
            "frames_dropped_behind": get(&h.frames_dropped_behind),
            "windows": get(&h.windows),
            "bad_windows": get(&h.bad_windows),
            "events": {
                "impact": get(&h.events[0]),
                "unseen_sound": get(&h.events[1]),
                "silent_impact": get(&h.events[2]),
            },
            "sse_clients": get(&st.sse_clients),
            "mqtt_connected": get(&st.mqtt_connected) == 1,
            "evidence_written": get(&st.evidence_written),
        },
        "last_event": last,
    })
}

/// `?since=N` or the `Last-Event-ID` header; a value that is not a number is `Err`.
fn resume_point(req: &Request, query: &str) -> Result<Option<u64>, String> {
    let from_query = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("since="))
        .map(str::to_string);
    let from_header = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Last-Event-ID"))
        .map(|h| h.value.as_str().trim().to_string());
    match from_header.or(from_query) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("Last-Event-ID / since = {v:?} is not an event id\n")),
    }
}

fn sse(ctx: &Ctx, req: Request, query: &str) {
    let since = match resume_point(&req, query) {
        Ok(s) => s,
        Err(msg) => {
            let _ = req.respond(text(400, msg));
            return;
        }
    };
    let stats = ctx.hub.stats.clone();
    if stats.sse_clients.load(Ordering::Relaxed) >= ctx.hub.max_clients as u64 {
        let _ = req.respond(text(
            503,
            format!(
                "too many SSE clients (http.max_clients = {})\n",
                ctx.hub.max_clients
            ),
        ));
        return;
    }
    if *req.method() == Method::Head {
        let _ = req.respond(text(200, "").with_header(header("Content-Type", "text/event-stream")));
        return;
    }
    let (first, rx) = ctx.hub.subscribe(since);
    stats.sse_clients.fetch_add(1, Ordering::Relaxed);
    let mut w = req.into_writer();
    let spawned = std::thread::Builder::new()
        .name("sse".into())
        .spawn(move || {
            let _ = stream(&mut *w, &first, &rx);
            stats.sse_clients.fetch_sub(1, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        log::error!("http: cannot start an SSE thread: {e}");
    }
}

/// Writes the response head, the backlog, then queued events until the queue closes (the
/// client was dropped or the server stops) or the client goes away.
fn stream(w: &mut dyn Write, first: &[Arc<str>], rx: &Receiver<Arc<str>>) -> std::io::Result<()> {
    w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n: impactd events\n\n",
    )?;
    for m in first {
        w.write_all(m.as_bytes())?;
    }
    w.flush()?;
    loop {
        match rx.recv_timeout(KEEPALIVE) {
            Ok(m) => {
                w.write_all(m.as_bytes())?;
                // Write whatever else is already queued before flushing.
                while let Ok(m) = rx.try_recv() {
                    w.write_all(m.as_bytes())?;
                }
                w.flush()?;
            }
            Err(RecvTimeoutError::Timeout) => {
                w.write_all(b": keep-alive\n\n")?;
                w.flush()?;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::Kind;

    fn event(id: u64) -> Arc<Event> {
        Arc::new(Event {
            id,
            kind: Kind::Impact,
            t: id as f64,
            frame: id * 12,
            confidence: 0.5,
            predicted: 0.5,
            observed: 0.5,
            ts: String::new(),
            class: None,
            class_confidence: None,
            visual_frame: None,
            audio_frame: None,
            observed_raw: 0.0,
            attack: None,
        })
    }

    fn hub(history: usize, client_queue: usize) -> Hub {
        Hub {
            state: Mutex::new(HubState {
                history: VecDeque::new(),
                clients: Vec::new(),
                last_event: None,
            }),
            history,
            client_queue,
            max_clients: 4,
            stats: Arc::new(SinkStats::default()),
        }
    }

    #[test]
    fn accepted_connections_inherit_the_timeouts() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(s.write_timeout().unwrap(), Some(SEND_TIMEOUT));
        assert_eq!(s.read_timeout().unwrap(), Some(RECV_TIMEOUT));
    }

    #[test]
    fn a_client_that_falls_behind_is_dropped_and_the_others_keep_receiving() {
        let h = hub(10, 2);
        let (_, stalled) = h.subscribe(None);
        let (_, reader) = h.subscribe(None);
        for id in 1..=5 {
            h.publish(&event(id));
            assert!(
                reader
                    .try_recv()
                    .unwrap()
                    .starts_with(&format!("id: {id}\n"))
            );
        }
        assert_eq!(h.stats.sse_clients_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(h.lock().clients.len(), 1);
        // The stalled client gets what was queued, then the end of its stream.
        assert_eq!(stalled.iter().count(), 2);
    }

    #[test]
    fn resume_points_within_and_beyond_the_history() {
        let h = hub(3, 8);
        for id in 1..=5 {
            h.publish(&event(id));
        }
        let ids = |first: &[Arc<str>]| -> Vec<String> {
            first
                .iter()
                .map(|m| m.lines().next().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&h.subscribe(Some(4)).0), ["id: 5"]);
        assert_eq!(ids(&h.subscribe(Some(2)).0), ["id: 3", "id: 4", "id: 5"]);
        assert_eq!(ids(&h.subscribe(Some(5)).0), Vec::<String>::new());
        let (first, _) = h.subscribe(Some(1));
        assert_eq!(ids(&first), ["event: overflow", "id: 3", "id: 4", "id: 5"]);
        assert!(first[0].contains("\"missed\":1"), "{}", first[0]);
        assert!(
            h.subscribe(None).0.is_empty(),
            "no resume point: only new events"
        );
        assert_eq!(h.stats.sse_history_overflows.load(Ordering::Relaxed), 1);
    }
}
