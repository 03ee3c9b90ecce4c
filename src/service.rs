//! Everything that knows about systemd: sd_notify (READY, WATCHDOG, STATUS, STOPPING), log lines
//! with journald priorities, and SIGTERM/SIGINT. The pipeline only sees [`crate::live::Hooks`]
//! and a stop flag.
//!
//! - `READY=1` once the model is loaded and both sources have been opened (or have failed once
//!   and are being retried): [`Notifier::ready`].
//! - `WATCHDOG=1` every half `WatchdogSec`, but only while [`Health::problem`] finds nothing:
//!   both sources online and delivering within `service.stall_s`, and frames being processed.
//!   A stalled camera or microphone therefore lets systemd restart the daemon after
//!   `WatchdogSec` (the unit's `Restart=on-failure` covers watchdog timeouts).
//! - `STATUS=` one line, every period: rates, level, events, or the problem.
//! - `STOPPING=1` when a stop is requested.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) every notification is a no-op.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::health::Health;
use crate::live::Hooks;

/// Logs to stderr; when stderr is the journal (`JOURNAL_STREAM` is set, as systemd does for
/// `StandardError=journal`), each line starts with its syslog priority (`<3>` error, `<4>`
/// warning, `<6>` info, `<7>` debug), which journald reads and strips.
pub fn init_logging() {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        b.format(|buf, record| {
            writeln!(
                buf,
                "<{}>{}: {}",
                journal_priority(record.level()),
                record.target(),
                record.args()
            )
        });
    } else {
        b.format_timestamp_millis();
    }
    b.init();
}

/// The syslog priority journald gives a log level.
pub fn journal_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Sets `stop` on SIGTERM or SIGINT; a second signal while stopping exits at once (status 1).
pub fn install_signals(stop: &Arc<AtomicBool>) -> std::io::Result<()> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Order matters: the conditional shutdown sees the flag as the first signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(stop))?;
        signal_hook::flag::register(sig, Arc::clone(stop))?;
    }
    Ok(())
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("sd_notify: {e}");
    }
}

/// The pipeline's [`Hooks`], sent to systemd.
pub struct Notifier;

impl Hooks for Notifier {
    fn ready(&mut self) {
        log::info!("ready");
        notify(&[NotifyState::Ready, NotifyState::Status("sources open")]);
    }
    fn stopping(&mut self) {
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// One status line: rates since the last line, level, events, or the problem.
pub fn status_line(health: &Health, problem: Option<&str>, fps: f64) -> String {
    let level = health
        .audio
        .level_dbfs()
        .map_or("level ?".into(), |l| format!("{l:.0} dBFS"));
    let ev: Vec<u64> = health
        .events
        .iter()
        .map(|e| e.load(Ordering::Relaxed))
        .collect();
    let head = match problem {
        Some(p) => format!("degraded: {p}"),
        None => "ok".into(),
    };
    format!(
        "{head}; video {fps:.1} fps, audio {level}; {} frames; events {} impact, {} unseen_sound, {} silent_impact; dropped {} video, {} audio overruns",
        health.frames_processed.load(Ordering::Relaxed),
        ev[0],
        ev[1],
        ev[2],
        health.video.dropped.load(Ordering::Relaxed),
        health.audio.overruns.load(Ordering::Relaxed),
    )
}

/// Starts the watchdog/status thread: every half `WatchdogSec` (1 s without a watchdog) it
/// sends `WATCHDOG=1` if the pipeline is healthy, and `STATUS=` always. Problems are logged when
/// they start and when they end. Returns when `stop` is set.
pub fn spawn_watchdog(
    health: Arc<Health>,
    stall: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 2).max(Duration::from_millis(50))
    });
    thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut last_problem: Option<String> = None;
            let mut last_frames = health.video.delivered.load(Ordering::Relaxed);
            let mut last_t = health.uptime();
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(period);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let problem = health.problem(stall);
                let frames = health.video.delivered.load(Ordering::Relaxed);
                let t = health.uptime();
                let fps = (frames - last_frames) as f64 / (t - last_t).as_secs_f64().max(1e-3);
                (last_frames, last_t) = (frames, t);
                let status = status_line(&health, problem.as_deref(), fps);
                match (&problem, &last_problem) {
                    (Some(p), None) => log::warn!("unhealthy: {p}; watchdog not fed"),
                    (None, Some(_)) => log::info!("healthy again: {status}"),
                    _ => {}
                }
                if problem.is_none() && watchdog.is_some() {
                    notify(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
                } else {
                    notify(&[NotifyState::Status(&status)]);
                }
                last_problem = problem;
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_the_syslog_ones() {
        assert_eq!(journal_priority(log::Level::Error), 3);
        assert_eq!(journal_priority(log::Level::Warn), 4);
        assert_eq!(journal_priority(log::Level::Info), 6);
        assert_eq!(journal_priority(log::Level::Debug), 7);
    }

    #[test]
    fn the_status_line_names_the_problem() {
        let h = Health::new();
        let s = status_line(&h, h.problem(Duration::from_secs(1)).as_deref(), 0.0);
        assert!(s.starts_with("degraded: video source is offline"), "{s}");
        assert!(!s.contains('\n'));
    }
}
