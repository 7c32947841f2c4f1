//! Wiring: the router, and serving it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use session_axum::{SessionLayer, TransportConfig};
use session_cli::error_chain;
use session_core::{PurgeTask, SessionConfig, SessionManager, SessionStore};
use tower_http::limit::RequestBodyLimitLayer;

use crate::args::Args;

/// Request bodies larger than this get `413 Payload Too Large`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The session manager (for listing and revoking).
    pub manager: SessionManager,
}

/// The whole app: JSON API under `/api`, the page at `/`, sessions on every route.
pub fn router(manager: SessionManager, transport: TransportConfig) -> Router {
    Router::new()
        .nest("/api", crate::api::routes())
        .merge(crate::html::routes())
        .with_state(AppState {
            manager: manager.clone(),
        })
        .layer(SessionLayer::new(manager, transport))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
}

/// How the demo takes tokens: the `__Host-session` cookie (plain `session`
/// with `dev_cookies`), and `Authorization: Bearer` for API clients, which
/// get new tokens in the `session-token` response header instead of a cookie.
///
/// Bearer requests need no CSRF defence (a browser never adds the header on
/// its own); a request that sends both uses the bearer token.
pub fn transport(dev_cookies: bool) -> TransportConfig {
    let cookies = if dev_cookies {
        TransportConfig::development()
    } else {
        TransportConfig::default()
    };
    cookies.with_bearer()
}

/// Opens the store named by `args.store` (without creating or migrating a
/// PostgreSQL table under `--no-migrate`: its schema is only checked) and
/// builds the manager.
///
/// A failure reads `opening URL: error: cause: …`, with a hint where one is
/// known and without the URL's password ([`session_cli::StoreUrl::explain_error`]).
pub async fn manager(args: &Args) -> Result<SessionManager, String> {
    let url = &args.store;
    let opened = if args.no_migrate {
        url.open_without_migrating().await
    } else {
        url.open().await
    };
    let store: Arc<dyn SessionStore> =
        opened.map_err(|e| format!("opening {url}: {}", url.explain_error(&e)))?;
    let config = SessionConfig::default()
        .idle_timeout(args.idle)
        .absolute_timeout(args.absolute);
    SessionManager::new(store, config)
        .map_err(|e| format!("session settings: {}", url.explain_error(&e)))
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub async fn run(args: Args) -> Result<(), String> {
    let manager = manager(&args).await?;
    let transport = transport(args.dev_cookies);
    let purge = PurgeTask::spawn(manager.store().clone(), Duration::from_secs(60));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {}", args.listen, error_chain(&e)))?;
    tracing::info!(store = %args.store, "session demo on http://{}", args.listen);
    axum::serve(listener, router(manager, transport))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server: {}", error_chain(&e)))?;
    purge.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
