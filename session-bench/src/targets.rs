//! The published targets (BENCHMARKS.md), checked against this run's
//! ratios. Printed, never asserted: a benchmark reports, a test decides.

use serde::Serialize;

use crate::report::{paired_runs, Ratio, Run};

/// `subject` (ours, unless said otherwise) must reach `at_least` times
/// `against` on `backend` in `phase`; `against` runs on `against_backend`
/// (the same backend, except for the no-session app, which runs on the
/// memory row).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Target {
    pub backend: &'static str,
    pub subject: &'static str,
    pub phase: &'static str,
    pub against: &'static str,
    pub against_backend: &'static str,
    pub at_least: f64,
}

const fn target(
    backend: &'static str,
    phase: &'static str,
    against: &'static str,
    at_least: f64,
) -> Target {
    Target {
        backend,
        subject: "ours",
        phase,
        against,
        against_backend: backend,
        at_least,
    }
}

/// Our Redis store with its local cache, against `against` on
/// `against_backend`.
const fn cached(
    phase: &'static str,
    against_backend: &'static str,
    against: &'static str,
    at_least: f64,
) -> Target {
    Target {
        backend: "redis",
        subject: "ours-cached",
        phase,
        against,
        against_backend,
        at_least,
    }
}

/// The targets of the benchmarks' issues, in their order. The HTTP rows use
/// the phases `http` and `http-read`; the no-session ceiling runs on the
/// memory row only.
pub const TARGETS: [Target; 24] = [
    target("redis", "load", "raw", 0.85),
    target("redis", "update", "raw", 0.75),
    target("redis", "create", "raw", 0.75),
    target("redis", "load", "tower-sessions", 1.5),
    target("redis", "create", "tower-sessions", 3.0),
    target("postgres", "create", "raw", 0.85),
    target("postgres", "load", "raw", 0.85),
    target("postgres", "update", "raw", 0.85),
    target("postgres", "delete", "raw", 0.85),
    target("postgres", "create", "tower-sessions", 1.5),
    target("sled", "load", "raw", 0.7),
    target("sled", "create", "raw", 0.4),
    target("sled", "update", "raw", 0.4),
    target("sled", "delete", "raw", 0.4),
    target("memory", "load", "tower-sessions", 2.0),
    target("memory", "update", "tower-sessions", 2.0),
    target("memory", "http", "none", 0.8),
    target("memory", "http", "tower-sessions", 1.2),
    target("redis", "http", "tower-sessions", 1.2),
    // The local cache and the fair ceiling for versioned writes.
    cached("load", "redis", "raw", 3.0),
    cached("http-read", "memory", "none", 0.7),
    cached("http-read", "redis", "tower-sessions", 1.8),
    target("redis", "update", "raw-cas", 0.85),
    target("redis", "update", "tower-sessions", 1.0),
];

/// A target and what this run measured for it.
#[derive(Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub target: Target,
    /// `None` when this run did not measure both sides.
    pub ratio: Option<Ratio>,
    /// Whether the median ratio reaches the target.
    pub met: Option<bool>,
}

/// Every target of `targets`, against `runs`.
pub fn check(runs: &[Run], targets: &[Target]) -> Vec<Outcome> {
    targets
        .iter()
        .map(|&t| {
            let ratio = paired_runs(
                runs,
                (t.backend, t.subject),
                (t.against_backend, t.against),
                t.phase,
            );
            Outcome {
                target: t,
                ratio,
                met: ratio.map(|r| r.median >= t.at_least),
            }
        })
        .collect()
}

/// The targets this run measured, one line each, after a count.
pub fn print(outcomes: &[Outcome]) {
    let measured: Vec<(&Outcome, Ratio)> = outcomes
        .iter()
        .filter_map(|o| Some((o, o.ratio?)))
        .collect();
    if measured.is_empty() {
        return;
    }
    let met = measured.iter().filter(|(o, _)| o.met == Some(true)).count();
    let skipped = outcomes.len() - measured.len();
    println!(
        "\ntargets: {met} of {} measured met{} (median of the rounds' ratios; lowest-highest round)",
        measured.len(),
        if skipped > 0 {
            format!(", {skipped} not measured in this run")
        } else {
            String::new()
        }
    );
    for (o, r) in measured {
        let t = o.target;
        let subject = if t.subject == "ours" {
            t.backend.to_owned()
        } else {
            format!("{} {}", t.backend, t.subject)
        };
        let against = if t.against_backend == t.backend {
            t.against.to_owned()
        } else {
            format!("{} {}", t.against_backend, t.against)
        };
        println!(
            "{:<17} {:<9} vs {:<15} >= {:<4.2} {:>6.2}x ({:.2}-{:.2})  {}",
            subject,
            t.phase,
            against,
            t.at_least,
            r.median,
            r.min,
            r.max,
            if o.met == Some(true) { "met" } else { "MISSED" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{cached, check, target};
    use crate::measure::Phase;
    use crate::report::{paired, Run};

    fn run(backend: &str, implementation: &'static str, rates: &[f64]) -> Run {
        phase_run(backend, implementation, "load", rates)
    }

    fn phase_run(
        backend: &str,
        implementation: &'static str,
        phase: &'static str,
        rates: &[f64],
    ) -> Run {
        let rounds: Vec<Vec<Phase>> = rates
            .iter()
            .map(|&r| {
                vec![Phase {
                    phase,
                    ops: 1,
                    ops_per_sec: r,
                    p50_us: 1,
                    p99_us: 1,
                }]
            })
            .collect();
        Run::new(backend, implementation, rounds)
    }

    #[test]
    fn ratios_pair_rounds_and_take_the_median_of_them() {
        // Round by round: 0.5, 50/60 and 0.8, so the median is 0.8. The
        // ratio of the median rates (100 / 150), pairing sorted rates, or
        // pairing the rounds in another order would all give 2/3.
        let runs = [
            run("sled", "ours", &[100.0, 50.0, 120.0]),
            run("sled", "raw", &[200.0, 60.0, 150.0]),
        ];
        let r = paired(&runs, "sled", "raw", "load").expect("both ran");
        assert_eq!((r.median, r.min, r.max), (0.8, 0.5, 50.0 / 60.0));
    }

    #[test]
    fn an_even_number_of_rounds_averages_the_middle_two() {
        let runs = [
            run("sled", "ours", &[50.0, 70.0]),
            run("sled", "raw", &[100.0, 100.0]),
        ];
        let r = paired(&runs, "sled", "raw", "load").expect("both ran");
        assert!((r.median - 0.6).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn a_target_is_met_at_its_ratio_and_missed_below_it() {
        let runs = [
            run("redis", "ours", &[85.0]),
            run("redis", "raw", &[100.0]),
            run("redis", "tower-sessions", &[60.0]),
        ];
        let out = check(
            &runs,
            &[
                target("redis", "load", "raw", 0.85),
                target("redis", "load", "tower-sessions", 1.5),
            ],
        );
        assert_eq!(out[0].met, Some(true));
        assert_eq!(out[1].met, Some(false));
    }

    #[test]
    fn store_and_http_runs_of_one_implementation_are_told_apart_by_phase() {
        let runs = [
            run("memory", "ours", &[400.0]),
            run("memory", "tower-sessions", &[100.0]),
            phase_run("memory", "ours", "http", &[90.0]),
            phase_run("memory", "tower-sessions", "http", &[60.0]),
        ];
        let http = paired(&runs, "memory", "tower-sessions", "http").expect("both ran");
        let load = paired(&runs, "memory", "tower-sessions", "load").expect("both ran");
        assert_eq!((http.median, load.median), (1.5, 4.0));
    }

    #[test]
    fn a_cached_target_pairs_the_cached_run_with_a_baseline_on_another_row() {
        let runs = [
            phase_run("redis", "ours", "http-read", &[30.0]),
            phase_run("redis", "ours-cached", "http-read", &[80.0]),
            phase_run("memory", "none", "http-read", &[100.0]),
        ];
        let out = check(&runs, &[cached("http-read", "memory", "none", 0.7)]);
        assert_eq!(out[0].ratio.map(|r| r.median), Some(0.8));
        assert_eq!(out[0].met, Some(true));
    }

    #[test]
    fn a_target_whose_baseline_did_not_run_is_not_measured() {
        let runs = [run("redis", "ours", &[85.0])];
        let out = check(&runs, &[target("redis", "load", "raw", 0.85)]);
        assert!(out[0].ratio.is_none() && out[0].met.is_none());
    }
}
