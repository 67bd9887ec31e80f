//! What the benchmarks of the `idsync` crate share.

/// A size from the environment, or the default.
pub fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// The CPU model and core count, printed with every figure.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!(
        "{cpu}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// The `p` quantile (0..1) of sorted values, nearest rank.
#[allow(dead_code)] // Not every benchmark takes quantiles.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
