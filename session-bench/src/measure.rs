//! Running a phase: N operations spread over C tasks, each timed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The outcome of one phase of one implementation.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// Phase name (`create`, `load`, `update`, `delete`, `http`).
    pub phase: &'static str,
    /// Operations completed.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
}

/// Runs `op` once per item, `concurrency` tasks at a time, and times each.
pub async fn run<T, F, Fut>(phase: &'static str, items: Vec<T>, concurrency: usize, op: F) -> Phase
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let mut chunks: Vec<Vec<T>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        chunks[i % concurrency].push(item);
    }
    let started = Instant::now();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(chunk.len());
                for item in chunk {
                    let t = Instant::now();
                    op(item).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a benchmark task panicked"));
    }
    summarize(phase, all, started.elapsed())
}

/// Builds a [`Phase`] from per-operation latencies and the wall time.
pub fn summarize(phase: &'static str, mut lat: Vec<Duration>, wall: Duration) -> Phase {
    lat.sort_unstable();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0, |d| d.as_micros() as u64)
    };
    Phase {
        phase,
        ops: lat.len() as u64,
        ops_per_sec: lat.len() as f64 / wall.as_secs_f64().max(1e-9),
        p50_us: pick(0.50),
        p99_us: pick(0.99),
    }
}
