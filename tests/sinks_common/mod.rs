//! Helpers for the stream tests (http, mqtt, evidence): the real `impactd` binary in the
//! background, its stderr watched line by line.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
use common::BASELINE;

/// A running `impactd replay`.
pub struct Daemon {
    pub child: Child,
    /// stderr lines as they come.
    lines: mpsc::Receiver<String>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Daemon {
    /// Starts `impactd ARGS` with stdout and stderr captured.
    pub fn start(args: &[&str]) -> Daemon {
        let mut c = Command::new(env!("CARGO_BIN_EXE_impactd"));
        c.args(args);
        Daemon::from_command(c)
    }

    /// Starts a prepared `impactd` command with stdout and stderr captured.
    pub fn from_command(mut c: Command) -> Daemon {
        let mut child = c
            .env("RUST_LOG", "info")
            .env("IMPACTD_MODEL", BASELINE)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start impactd");
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }));
        Daemon {
            child,
            lines,
            log: Vec::new(),
            stdout,
        }
    }

    /// Waits (at most `within`) for a stderr line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "impactd did not log {needle:?} within {within:?}; its stderr:\n{}",
            self.log.join("\n")
        );
    }

    /// The HTTP address it logged ("listening on http://ADDR").
    pub fn http_addr(&mut self) -> String {
        let l = self.wait_for("listening on http://", Duration::from_secs(60));
        l.split("http://").nth(1).unwrap().trim().to_string()
    }

    /// Waits for the exit (at most `within`, else kills it and panics); returns the exit code,
    /// stdout and the whole stderr.
    pub fn finish(mut self, within: Duration) -> (i32, String, String) {
        let end = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "impactd did not finish within {within:?}:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = self.stdout.take().unwrap().join().unwrap();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.log.push(l);
        }
        (status.code().unwrap_or(-1), out, self.log.join("\n"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events of a JSON Lines text.
pub fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The built-in scene's events: 3 impacts, 1 unseen_sound, 1 silent_impact (tests/cli.rs).
pub const SCENE_EVENTS: usize = 5;
