//! What the scaling benches read off a process: its memory from /proc and percentiles of timed calls.

use std::time::Duration;

/// A `/proc/self/status` field given in kB, e.g. `status_kib("VmRSS:")`; 0 where it cannot be read.
pub fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|line| line.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `p` quantile (nearest rank) of sorted durations, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    loket::quantile::nearest_rank(sorted, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}
