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
    /// Per phase, the round with the median rate (from `rounds`).
    pub phases: Vec<Phase>,
    /// Every round's phases, in the order the rounds ran.
    pub rounds: Vec<Vec<Phase>>,
}

impl Run {
    /// `rounds` of `implementation` on `backend`, with each phase's median.
    pub fn new(backend: &str, implementation: &'static str, rounds: Vec<Vec<Phase>>) -> Self {
        Self {
            backend: backend.to_owned(),
            implementation,
            phases: median_phases(&rounds),
            rounds,
        }
    }
}

/// Every phase of `rounds`, each the round with the median rate: one slow
/// or lucky round (a checkpoint, a neighbour's burst) does not decide. Of
/// an even number of rounds it takes the upper middle one, so that the
/// rate and its latencies come from one round (ratios average the two).
fn median_phases(rounds: &[Vec<Phase>]) -> Vec<Phase> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    let names: Vec<&'static str> = first.iter().map(|p| p.phase).collect();
    names
        .into_iter()
        .map(|name| {
            let mut seen: Vec<Phase> = rounds
                .iter()
                .filter_map(|r| r.iter().find(|p| p.phase == name).cloned())
                .collect();
            seen.sort_by(|x, y| x.ops_per_sec.total_cmp(&y.ops_per_sec));
            seen.swap_remove(seen.len() / 2)
        })
        .collect()
}

/// The run of `implementation` on `backend` that measured `phase`: a
/// backend's store and HTTP workloads are separate runs of the same
/// implementation, told apart by their phases.
fn run_of<'a>(
    runs: &'a [Run],
    backend: &str,
    implementation: &str,
    phase: &str,
) -> Option<&'a Run> {
    runs.iter().find(|r| {
        r.backend == backend
            && r.implementation == implementation
            && r.phases.iter().any(|p| p.phase == phase)
    })
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
    paired_runs(runs, (backend, "ours"), (backend, base), phase)
}

/// As [`paired`], for any two runs: `ours` and `base` are (backend,
/// implementation); rounds are paired by their index.
pub fn paired_runs(
    runs: &[Run],
    ours: (&str, &str),
    base: (&str, &str),
    phase: &str,
) -> Option<Ratio> {
    let rate = |round: &[Phase]| {
        round
            .iter()
            .find(|p| p.phase == phase)
            .map(|p| p.ops_per_sec)
    };
    let ours = run_of(runs, ours.0, ours.1, phase)?;
    let base = run_of(runs, base.0, base.1, phase)?;
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

/// The median round's `phase` of `implementation` on `backend`.
fn find<'a>(
    runs: &'a [Run],
    backend: &str,
    implementation: &str,
    phase: &str,
) -> Option<&'a Phase> {
    run_of(runs, backend, implementation, phase)?
        .phases
        .iter()
        .find(|p| p.phase == phase)
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
        print_redis_extras(runs);
    }
    for phase in ["http", "http-read"] {
        if has(phase) {
            print_http_table(runs, a, phase);
        }
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

fn print_http_table(runs: &[Run], a: &Args, phase: &str) {
    let what = if phase == "http" {
        "read one value + increment a counter"
    } else {
        "read-mostly: 19 requests read two values, the 20th increments"
    };
    println!(
        "\nHTTP workload `{phase}`: {} connections for {:?}, {what}",
        a.connections, a.http
    );
    println!(
        "{:<12} {:>10} {:>8} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "store", "ours req/s", "p50 us", "p99 us", "no-session", "ours/none", "tower", "ours/tower"
    );
    // The sessionless app runs once, on the memory row; every row's ratio
    // to it is shown. Client-side sessions (`cookie`) have no store and no
    // tower-sessions counterpart.
    let none = find(runs, "memory", "none", phase);
    let rows = [
        ("memory", "memory", "ours"),
        ("cookie", "cookie", "ours"),
        ("redis", "redis", "ours"),
        ("redis+cache", "redis", "ours-cached"),
    ];
    for (label, store, imp) in rows {
        let ours = find(runs, store, imp, phase);
        let tower = find(runs, store, "tower-sessions", phase).filter(|_| store != "cookie");
        let own_none = none.filter(|_| store == "memory" && imp == "ours");
        if ours.or(own_none).is_none() {
            continue;
        }
        println!(
            "{:<12} {:>10} {:>8} {:>8} {:>12} {:>10} {:>10} {:>10}",
            label,
            rate(ours),
            micros(ours, |p| p.p50_us),
            micros(ours, |p| p.p99_us),
            rate(own_none),
            ratio(paired_runs(runs, (store, imp), ("memory", "none"), phase)),
            rate(tower),
            ratio(
                paired_runs(runs, (store, imp), (store, "tower-sessions"), phase)
                    .filter(|_| store != "cookie")
            )
        );
    }
}

/// Redis only: our store with its local cache against the raw `GET`, and
/// our versioned update against the raw client's smallest compare-and-set.
fn print_redis_extras(runs: &[Run]) {
    let cached = find(runs, "redis", "ours-cached", "load");
    let cas = find(runs, "redis", "raw-cas", "update");
    if cached.or(cas).is_none() {
        return;
    }
    println!("\nredis: local cache, and the compare-and-set ceiling");
    println!("{:<28} {:>10} {:>16} {:>8}", "", "op/s", "against", "ratio");
    let rows = [
        (
            "load, ours with cache",
            cached,
            ("ours-cached", "raw"),
            "load",
            "raw GET",
        ),
        (
            "load, ours without",
            find(runs, "redis", "ours", "load"),
            ("ours", "raw"),
            "load",
            "raw GET",
        ),
        (
            "update, ours",
            find(runs, "redis", "ours", "update"),
            ("ours", "raw-cas"),
            "update",
            "raw CAS script",
        ),
        (
            "update, ours with cache",
            find(runs, "redis", "ours-cached", "update"),
            ("ours-cached", "raw-cas"),
            "update",
            "raw CAS script",
        ),
        (
            "update, raw CAS script",
            cas,
            ("raw-cas", "raw"),
            "update",
            "raw SET",
        ),
    ];
    for (label, p, (subject, base), phase, against) in rows {
        println!(
            "{:<28} {:>10} {:>16} {:>8}",
            label,
            rate(p),
            against,
            ratio(paired_runs(
                runs,
                ("redis", subject),
                ("redis", base),
                phase
            ))
        );
    }
}
