//! Timing, best-of-rounds figures and the benchmarks' random numbers.

use std::time::Instant;

/// Best of this many rounds: the machine is shared, and interference only ever slows a round down.
pub const ROUNDS: usize = 15;

/// Wall-clock and on-CPU time of the current thread. The on-CPU time (from
/// `/proc/thread-self/schedstat`, Linux) excludes time the scheduler gave
/// to other processes — the figure that says what one op costs on a core
/// when the machine is shared.
pub struct Timer {
    wall: Instant,
    cpu: Option<u64>,
}

fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

impl Timer {
    pub fn start() -> Timer {
        Timer {
            cpu: cpu_ns(),
            wall: Instant::now(),
        }
    }
    /// (wall ns, on-CPU ns) per op.
    pub fn per_op(&self, ops: u64) -> (f64, f64) {
        let wall = self.wall.elapsed().as_nanos() as f64 / ops as f64;
        let cpu = match (self.cpu, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / ops as f64,
            _ => wall,
        };
        (wall, cpu)
    }
}

/// Best (wall, on-CPU) ns per op over rounds.
#[derive(Clone, Copy)]
pub struct Best(pub f64, pub f64);
impl Best {
    pub fn new() -> Best {
        Best(f64::INFINITY, f64::INFINITY)
    }
    pub fn add(&mut self, (wall, cpu): (f64, f64)) {
        self.0 = self.0.min(wall);
        self.1 = self.1.min(cpu);
    }
}

/// Best of [`ROUNDS`] timed rounds; a round calls `step` until it has done
/// `ops_per_round` ops (`step` returns how many ops it did). Generic, so
/// `step` is inlined into the timed loop.
pub fn best_of_rounds(ops_per_round: u64, mut step: impl FnMut() -> u64) -> Best {
    let mut best = Best::new();
    for _ in 0..ROUNDS {
        let timer = Timer::start();
        let mut ops = 0u64;
        while ops < ops_per_round {
            ops += step();
        }
        best.add(timer.per_op(ops));
    }
    best
}

pub struct Rng(pub u64);
impl Rng {
    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
