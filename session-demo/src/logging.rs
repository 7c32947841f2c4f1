//! The log: `RUST_LOG` (default `info`) to stdout, and never a store
//! password in it.
//!
//! The demo logs the store as its [`StoreUrl`], whose `Display` hides the
//! password, and errors as their whole cause chain. As a second line of
//! defence every line is passed through [`StoreUrl::redact_secrets`] before
//! it is written, so that neither the demo nor a library it uses (a driver
//! quoting its connect options at `trace`, say) can print the password.

use std::io::{self, Write};
use std::sync::Arc;

use session_cli::StoreUrl;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global `tracing` subscriber for the demo's process.
pub fn init(store: &StoreUrl) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(Redacting::new(store.clone(), io::stdout))
        .init();
}

/// A [`MakeWriter`](https://docs.rs/tracing-subscriber/0.3/tracing_subscriber/fmt/trait.MakeWriter.html) whose writers replace `store`'s passwords with `***`
/// in everything written through them.
#[derive(Clone, Debug)]
pub struct Redacting<M> {
    store: Arc<StoreUrl>,
    inner: M,
}

impl<M> Redacting<M> {
    /// Redacts `store`'s passwords from what goes to `inner`'s writers.
    pub fn new(store: StoreUrl, inner: M) -> Self {
        Self {
            store: Arc::new(store),
            inner,
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            store: self.store.clone(),
            inner: self.inner.make_writer(),
        }
    }
}

/// One writer of [`Redacting`]. The formatter hands it each event whole, so
/// a password is never split between two writes.
#[derive(Debug)]
pub struct RedactingWriter<W> {
    store: Arc<StoreUrl>,
    inner: W,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.inner
            .write_all(self.store.redact_secrets(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_password_written_to_the_log_comes_out_as_stars() {
        let capture = Capture::default();
        let store = StoreUrl::parse("postgres://app:pw-in-a-log@db/app").unwrap();
        let make = Redacting::new(store, {
            let capture = capture.clone();
            move || capture.clone()
        });
        let subscriber = tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                raw = "postgres://app:pw-in-a-log@db/app",
                "connect pw-in-a-log"
            );
        });
        let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("connect ***"), "{logged}");
        assert!(
            logged.contains("raw=\"postgres://app:***@db/app\""),
            "{logged}"
        );
        assert!(!logged.contains("pw-in-a-log"), "{logged}");
    }
}
