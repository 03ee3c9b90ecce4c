//! An append-only file that rotates by size: `events.jsonl` grows to `max_bytes`, then becomes
//! `events.jsonl.1` (older ones shift to `.2`, `.3`, ...) and a new `events.jsonl` starts; at most
//! `keep` rotated files are kept. Rotation happens only between writes, so a JSON line is never
//! split across two files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The rotating writer. Each `write_all` of a whole line lands in one file.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens `path` for appending. `max_bytes = 0` never rotates.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.into(),
            max_bytes,
            keep,
            file,
            size,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            // No history wanted: start the file again.
            self.file = File::create(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Rotate before a write that would pass the limit (unless the file is empty: a line
        // longer than the limit still gets written, alone).
        if self.max_bytes > 0 && self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_keeps_n_files_and_never_splits_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..50 {
            // 20-byte lines: 5 per file
            f.write_all(format!("{{\"id\":{i:>10}}}\n").as_bytes())
                .unwrap();
        }
        f.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let live = read(&path);
        let one = read(&dir.path().join("events.jsonl.1"));
        let two = read(&dir.path().join("events.jsonl.2"));
        assert!(
            !dir.path().join("events.jsonl.3").exists(),
            "only 2 rotated files kept"
        );
        for text in [&live, &one, &two] {
            assert!(text.len() <= 100);
            assert!(
                text.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
                "{text}"
            );
        }
        // the newest lines are in the live file, the ones before in .1, then .2
        let ids = |t: &str| {
            t.lines()
                .map(|l| l[6..16].trim().parse::<u32>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&live), (45..50).collect::<Vec<_>>());
        assert_eq!(ids(&one), (40..45).collect::<Vec<_>>());
        assert_eq!(ids(&two), (35..40).collect::<Vec<_>>());
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        std::fs::write(&path, "x".repeat(90) + "\n").unwrap();
        let mut f = RotatingFile::open(&path, 100, 1).unwrap();
        f.write_all(b"0123456789abcdef\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0123456789abcdef\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("e.jsonl.1"))
                .unwrap()
                .len(),
            91
        );
    }

    #[test]
    fn zero_limit_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let mut f = RotatingFile::open(&path, 0, 3).unwrap();
        for _ in 0..100 {
            f.write_all(b"line\n").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 500);
        assert!(!dir.path().join("e.jsonl.1").exists());
    }
}
