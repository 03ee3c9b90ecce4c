//! Audio held in memory (`impactd demo` plays generated scenes that never touch the disk; their
//! video goes through [`super::y4m::Y4mSource::from_reader`] on the Y4M bytes).

use std::sync::Arc;

use super::{AudioInfo, AudioSource, SourceError};
use crate::media::{AudioBlock, NS_PER_S};

/// Samples per block, as the WAV reader delivers them.
const BLOCK: usize = 1024;

/// Mono samples in [-1, 1] delivered in blocks.
pub struct MemoryAudio {
    samples: Arc<[f32]>,
    pos: usize,
    rate: u32,
    info: AudioInfo,
}

impl MemoryAudio {
    /// `name` is only used in logs.
    pub fn new(name: &str, samples: Arc<[f32]>, rate: u32) -> MemoryAudio {
        MemoryAudio {
            info: AudioInfo {
                rate,
                channels: 1,
                description: format!("{name}: {} Hz mono in memory", rate),
            },
            samples,
            pos: 0,
            rate,
        }
    }
}

impl AudioSource for MemoryAudio {
    fn info(&self) -> &AudioInfo {
        &self.info
    }
    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        if self.pos >= self.samples.len() {
            return Ok(None);
        }
        let end = (self.pos + BLOCK).min(self.samples.len());
        let block = AudioBlock {
            pts_ns: (self.pos as i128 * NS_PER_S as i128 / self.rate as i128) as i64,
            rate: self.rate,
            samples: self.samples[self.pos..end].to_vec(),
        };
        self.pos = end;
        Ok(Some(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_every_sample_once_in_order() {
        let s: Arc<[f32]> = (0..2500).map(|i| i as f32).collect();
        let mut a = MemoryAudio::new("x", s.clone(), 44_100);
        let mut got = Vec::new();
        let mut last = -1;
        while let Some(b) = a.next_block().unwrap() {
            assert!(b.pts_ns > last);
            last = b.pts_ns;
            got.extend(b.samples);
        }
        assert_eq!(&got[..], &s[..]);
    }
}
