//! CPU time of the calling thread, for stage costs that other threads cannot inflate (on a
//! shared or pinned core, wall time also counts the time a thread waited to be scheduled).

use std::time::Duration;

/// A reading of this thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuInstant(Duration);

impl CpuInstant {
    pub fn now() -> CpuInstant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer; the thread CPU clock
        // exists on every Linux; on failure the reading stays 0 and costs show as 0.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        CpuInstant(Duration::new(
            ts.tv_sec.max(0) as u64,
            ts.tv_nsec.clamp(0, 999_999_999) as u32,
        ))
    }

    /// CPU time this thread used since `self`.
    pub fn elapsed(self) -> Duration {
        CpuInstant::now().0.saturating_sub(self.0)
    }
}

impl std::ops::Sub for CpuInstant {
    type Output = Duration;
    fn sub(self, earlier: CpuInstant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_work_not_sleep() {
        let t0 = CpuInstant::now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            t0.elapsed() < Duration::from_millis(10),
            "sleeping uses no CPU"
        );
        let t1 = CpuInstant::now();
        let mut x = 0u64;
        while t1.elapsed() < Duration::from_millis(5) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0 && t1.elapsed() >= Duration::from_millis(5));
    }
}
