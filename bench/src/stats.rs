//! Latency samples and the numbers reported from them.

use std::time::{Duration, Instant};

/// Per-operation latencies of one variant, in nanoseconds, and the time spent in the measured loops.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub ns: Vec<u64>,
    pub busy: Duration,
    /// Operations completed by all workers; equals `ns.len()` for a sequential run.
    pub ops: u64,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Self { ns: Vec::with_capacity(n), ..Self::default() }
    }

    /// Times `f` once and records it.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let took = start.elapsed();
        self.ns.push(took.as_nanos() as u64);
        self.busy += took;
        self.ops += 1;
        out
    }

    pub fn merge(&mut self, other: Samples) {
        self.ns.extend(other.ns);
        self.busy += other.busy;
        self.ops += other.ops;
    }

    pub fn summary(&self) -> Summary {
        let mut v = self.ns.clone();
        v.sort_unstable();
        let pick = |q: f64| -> f64 {
            if v.is_empty() {
                return f64::NAN;
            }
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v[i] as f64 / 1_000.0
        };
        let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<u64>() as f64 / v.len() as f64 / 1_000.0 };
        Summary {
            n: self.ops,
            mean_us: mean,
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            per_sec: if self.busy.is_zero() { f64::NAN } else { self.ops as f64 / self.busy.as_secs_f64() },
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Operations per second of wall time (sequential: 1 / mean).
    pub per_sec: f64,
}

/// Runs every variant for `per_variant` operations, interleaved in `rounds` slices so that drift (frequency,
/// other load, cache state) hits all variants alike. `op(variant, i)` performs operation `i` of a variant.
pub fn interleaved(
    variants: usize,
    per_variant: usize,
    rounds: usize,
    mut op: impl FnMut(usize, usize),
) -> Vec<Samples> {
    let mut out: Vec<Samples> = (0..variants).map(|_| Samples::with_capacity(per_variant)).collect();
    let rounds = rounds.max(1);
    let slice = per_variant.div_ceil(rounds);
    let mut done = vec![0usize; variants];
    for _ in 0..rounds {
        for (v, samples) in out.iter_mut().enumerate() {
            let end = (done[v] + slice).min(per_variant);
            for i in done[v]..end {
                samples.time(|| op(v, i));
            }
            done[v] = end;
        }
    }
    out
}

/// `threads` workers each perform `per_thread` operations; returns all latencies and the wall time.
pub fn concurrent(threads: usize, per_thread: usize, op: impl Fn(usize, usize) + Sync) -> Samples {
    let start = Instant::now();
    let parts: Vec<Samples> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                s.spawn(move || {
                    let mut samples = Samples::with_capacity(per_thread);
                    for i in 0..per_thread {
                        samples.time(|| op(t, i));
                    }
                    samples
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench worker panicked")).collect()
    });
    let wall = start.elapsed();
    let mut all = Samples::default();
    for p in parts {
        all.merge(p);
    }
    all.busy = wall;
    all
}
