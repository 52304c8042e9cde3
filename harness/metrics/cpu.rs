//! The harness process's own CPU time, read once a second into the timeline: a generator that has
//! used (nearly) every core cannot be trusted to have offered its load on time, nor to have measured
//! the target's service time undistorted.

/// Clock ticks per second of `/proc/<pid>/stat` (Linux's USER_HZ, 100 on every architecture it
/// exposes to user space).
const USER_HZ: f64 = 100.0;

/// CPU seconds this process has used (user and system), where the system says (Linux); `None`
/// elsewhere.
pub fn process_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime), numbered from 1 with the state (field 3) first here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Cores this process may run on.
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        let Some(before) = super::process_seconds() else {
            return; // not Linux: nothing to read
        };
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let after = super::process_seconds().unwrap();
        assert!(after >= before, "{before} → {after}");
        assert!(super::cores() >= 1.0);
    }
}
