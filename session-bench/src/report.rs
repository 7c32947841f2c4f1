//! The outcome of a run: the rounds each implementation ran, ratios of
//! ours to a baseline round by round, and the tables.

use serde::Serialize;

use crate::measure::Phase;
use crate::{payload, Args};

/// One implementation on one backend: every round, and the median round of
/// each phase.
#[derive(Serialize)]
pub struct Run {
    pub backend: String,
    pub implementation: &'static str,
    /// Per phase, the round with the median rate.
    pub phases: Vec<Phase>,
    /// Every round's phases, in the order the rounds ran.
    pub rounds: Vec<Vec<Phase>>,
}

/// Ours over a baseline for one phase, taken round by round: in a round the
/// two ran back to back, so a slow spell of the machine shifts both.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Ratio {
    /// The median of the rounds' ratios.
    pub median: f64,
    /// The lowest round's ratio.
    pub min: f64,
    /// The highest round's ratio.
    pub max: f64,
}

/// Ours over `base` on `backend` for `phase`; `None` unless both ran it.
pub fn paired(runs: &[Run], backend: &str, base: &str, phase: &str) -> Option<Ratio> {
    let rate = |round: &[Phase]| {
        round
            .iter()
            .find(|p| p.phase == phase)
            .map(|p| p.ops_per_sec)
    };
    // A backend's store and HTTP workloads are separate runs of the same
    // implementation: the phase tells them apart.
    let of = |imp: &str| {
        runs.iter().find(|r| {
            r.backend == backend
                && r.implementation == imp
                && r.rounds.iter().any(|round| rate(round).is_some())
        })
    };
    let (ours, base) = (of("ours")?, of(base)?);
    let mut ratios: Vec<f64> = ours
        .rounds
        .iter()
        .zip(&base.rounds)
        .filter_map(|(o, b)| match (rate(o), rate(b)) {
            (Some(o), Some(b)) if b > 0.0 => Some(o / b),
            _ => None,
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => ratios[n / 2],
        _ => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    };
    Some(Ratio {
        median,
        min: ratios[0],
        max: ratios[n - 1],
    })
}

fn find<'a>(
    runs: &'a [Run],
    backend: &str,
    implementation: &str,
    phase: &str,
) -> Option<&'a Phase> {
    runs.iter()
        .filter(|r| r.backend == backend && r.implementation == implementation)
        .find_map(|r| r.phases.iter().find(|p| p.phase == phase))
}

/// A ratio column: `-` when either side did not run.
fn ratio(r: Option<Ratio>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{:.2}x", r.median))
}

fn rate(p: Option<&Phase>) -> String {
    p.map_or("-".to_owned(), |p| format!("{:.0}", p.ops_per_sec))
}

/// A latency column: `-` when the implementation did not run.
fn micros(p: Option<&Phase>, pick: fn(&Phase) -> u64) -> String {
    p.map_or_else(|| "-".to_owned(), |p| pick(p).to_string())
}

pub fn print_table(runs: &[Run], a: &Args) {
    let has = |phase: &str| {
        runs.iter()
            .any(|r| r.phases.iter().any(|p| p.phase == phase))
    };
    if has("create") {
        print_store_table(runs, a);
    }
    if has("http") {
        print_http_table(runs, a);
    }
}

fn print_store_table(runs: &[Run], a: &Args) {
    println!(
        "\nstore workload: {} sessions, ~{} B payload, {} tasks, median of {} round(s)",
        a.sessions,
        payload::bytes(0).len(),
        a.concurrency,
        a.rounds
    );
    println!(
        "{:<9} {:<7} {:>10} {:>8} {:>8} {:>10} {:>9} {:>10} {:>10}",
        "backend",
        "phase",
        "ours op/s",
        "p50 us",
        "p99 us",
        "raw op/s",
        "ours/raw",
        "tower op/s",
        "ours/tower"
    );
    for backend in &a.backends {
        for phase in ["create", "load", "update", "delete"] {
            let ours = find(runs, backend, "ours", phase);
            let raw = find(runs, backend, "raw", phase);
            let tower = find(runs, backend, "tower-sessions", phase);
            if ours.or(raw).or(tower).is_none() {
                continue;
            }
            println!(
                "{:<9} {:<7} {:>10} {:>8} {:>8} {:>10} {:>9} {:>10} {:>10}",
                backend,
                phase,
                rate(ours),
                micros(ours, |p| p.p50_us),
                micros(ours, |p| p.p99_us),
                rate(raw),
                ratio(paired(runs, backend, "raw", phase)),
                rate(tower),
                ratio(paired(runs, backend, "tower-sessions", phase))
            );
        }
    }
}

fn print_http_table(runs: &[Run], a: &Args) {
    println!(
        "\nHTTP workload: {} connections for {:?}, read one value + increment a counter",
        a.connections, a.http
    );
    println!(
        "{:<9} {:>10} {:>8} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "store", "ours req/s", "p50 us", "p99 us", "no-session", "ours/none", "tower", "ours/tower"
    );
    let none = find(runs, "memory", "none", "http");
    for store in ["memory", "redis"] {
        let ours = find(runs, store, "ours", "http");
        let tower = find(runs, store, "tower-sessions", "http");
        // The sessionless app runs once, on the memory row.
        let own_none = none.filter(|_| store == "memory");
        if ours.or(tower).or(own_none).is_none() {
            continue;
        }
        println!(
            "{:<9} {:>10} {:>8} {:>8} {:>12} {:>10} {:>10} {:>10}",
            store,
            rate(ours),
            micros(ours, |p| p.p50_us),
            micros(ours, |p| p.p99_us),
            rate(own_none),
            ratio(paired(runs, "memory", "none", "http").filter(|_| store == "memory")),
            rate(tower),
            ratio(paired(runs, store, "tower-sessions", "http"))
        );
    }
}
