//! [`Stats`]: what `sessionctl stats` reports.

use std::fmt;

use session_sled::IndexReport;

/// Backend-specific numbers about a store's default namespace, from
/// [`Connection::stats`](crate::Connection::stats).
///
/// - sled: records stored (live or expired, from a full scan) and whether the
///   user and expiry indexes agree with them
///   ([`SledStore::check_indexes`](session_sled::SledStore::check_indexes)).
/// - PostgreSQL: live and expired rows and users with live sessions in the
///   session table.
/// - Redis: session record keys and per-user index keys under the key prefix,
///   counted with `SCAN` on every master.
/// - memory: nothing; a `memory:` store is new and empty in every process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// `"memory"`, `"sled"`, `"postgres"`, `"redis"` or `"redis-cluster"`.
    pub backend: &'static str,
    /// Where the numbers come from: a folder, a table, a key prefix.
    pub location: String,
    /// Named counts, in the order they are printed.
    pub counts: Vec<(&'static str, u64)>,
    /// Anything wrong that was found (e.g. sled index entries that disagree
    /// with the records). Empty when all is well.
    pub problems: Vec<String>,
    /// Settings that work but can hurt (e.g. a Redis eviction policy that
    /// logs users out when memory runs short).
    pub warnings: Vec<String>,
}

impl Stats {
    pub(crate) fn memory() -> Self {
        Self {
            backend: "memory",
            location: "this process (a memory: store starts empty and is not shared)".into(),
            counts: vec![("records", 0)],
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn sled(path: String, report: &IndexReport) -> Self {
        let counts = vec![
            ("records (live or expired)", report.records),
            ("corrupt records", report.corrupt_records),
            (
                "records missing their user-index entry",
                report.missing_user_entries,
            ),
            (
                "records missing their expiry-index entry",
                report.missing_expiry_entries,
            ),
            ("dangling user-index entries", report.dangling_user_entries),
            (
                "dangling expiry-index entries",
                report.dangling_expiry_entries,
            ),
        ];
        let problems = if report.is_consistent() {
            Vec::new()
        } else {
            vec!["the indexes disagree with the records (see the counts above)".into()]
        };
        Self {
            backend: "sled",
            location: format!("folder {path}, trees sessions.*"),
            counts,
            problems,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn postgres(table: String, live: i64, expired: i64, users: i64) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Self {
            backend: "postgres",
            location: format!("table {table}"),
            counts: vec![
                ("live sessions", n(live)),
                ("expired rows (not yet purged)", n(expired)),
                ("users with live sessions", n(users)),
            ],
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn redis(
        backend: &'static str,
        prefix: &str,
        masters: usize,
        records: u64,
        indexes: u64,
        policies: &[(String, String)],
    ) -> Self {
        let cluster = backend == "redis-cluster";
        let mut counts = vec![
            ("session record keys", records),
            ("user index keys", indexes),
        ];
        if cluster {
            counts.push(("master nodes scanned", masters as u64));
        }
        let warnings = policies
            .iter()
            .filter(|(_, policy)| policy != "noeviction")
            .map(|(node, policy)| eviction_warning(node, policy))
            .collect();
        Self {
            backend,
            location: format!("keys {prefix}*"),
            counts,
            problems: Vec::new(),
            warnings,
        }
    }

    /// Whether nothing wrong was found.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "backend: {}", self.backend)?;
        writeln!(f, "location: {}", self.location)?;
        let width = self.counts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (name, value) in &self.counts {
            writeln!(f, "{name:<width$}  {value}")?;
        }
        if self.backend == "sled" {
            let verdict = if self.problems.is_empty() {
                "consistent"
            } else {
                "INCONSISTENT"
            };
            writeln!(f, "indexes: {verdict}")?;
        }
        for problem in &self.problems {
            writeln!(f, "problem: {problem}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

/// What an evicting `maxmemory-policy` means for sessions. Every session key
/// has a deadline, so the `volatile-*` policies evict them as readily as the
/// `allkeys-*` ones.
fn eviction_warning(node: &str, policy: &str) -> String {
    let at = if node.is_empty() {
        String::new()
    } else {
        format!(" on {node}")
    };
    format!(
        "maxmemory-policy is {policy}{at}: when memory runs short Redis evicts session keys, \
         which silently logs users out. Use noeviction: writes then fail fast (HTTP 503 with \
         Retry-After) until memory is freed, and no session is lost."
    )
}
