//! Wiring: the router, and serving it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use session_axum::{AccessTokenLayer, SessionLayer, TransportConfig};
use session_cli::error_chain;
use session_core::{ClientSide, PurgeTask, SessionConfig, SessionManager, SessionStore};
use tower_http::limit::RequestBodyLimitLayer;

use crate::args::Args;
use crate::tokens::Tokens;

/// Request bodies larger than this get `413 Payload Too Large`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The session manager (for listing and revoking).
    pub manager: SessionManager,
    /// Access tokens: issuer and verifier.
    pub tokens: Tokens,
}

/// The whole app: JSON API under `/api`, the page at `/`, the tab client at
/// `/tab`, sessions on every route; access tokens signed with a key made now.
pub fn router(manager: SessionManager, transport: TransportConfig) -> Router {
    router_with(manager, transport, Tokens::generated())
}

/// [`router`] with the given access-token keys.
pub fn router_with(manager: SessionManager, transport: TransportConfig, tokens: Tokens) -> Router {
    let access = AccessTokenLayer::new(tokens.verifier.clone()).with_manager(manager.clone());
    Router::new()
        .nest("/api", crate::api::routes())
        .merge(crate::html::routes())
        .merge(crate::tab::routes())
        .merge(crate::tokens::well_known())
        .with_state(AppState {
            manager: manager.clone(),
            tokens,
        })
        .layer(access)
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
    cookies(dev_cookies).with_bearer()
}

/// The cookie settings alone: client-side sessions travel in cookies only.
pub fn cookies(dev_cookies: bool) -> TransportConfig {
    if dev_cookies {
        TransportConfig::development()
    } else {
        TransportConfig::default()
    }
}

/// How many cookies a client-side session may span in the demo (a 10 KiB
/// note fits).
pub const CLIENT_SIDE_CHUNKS: usize = 4;

/// Opens the store named by `args.store` (without creating or migrating a
/// PostgreSQL table under `--no-migrate`: its schema is only checked) and
/// builds the manager.
///
/// A failure reads `opening URL: error: cause: …`, with a hint where one is
/// known and without the URL's password ([`session_cli::StoreUrl::explain_error`]).
///
/// With `--client-side`, the sessions are sealed into the cookie with the
/// keys in [`KEYS_VAR`](crate::keys::KEYS_VAR), and the store is opened only
/// for `--revocation-list`. The store is returned when there is one, for the
/// purge task.
pub async fn manager(
    args: &Args,
) -> Result<(SessionManager, Option<Arc<dyn SessionStore>>), String> {
    let config = SessionConfig::default()
        .idle_timeout(args.idle)
        .absolute_timeout(args.absolute);
    if args.client_side {
        let keys = crate::keys::from_env()?;
        let mut client = ClientSide::new().chunks(CLIENT_SIDE_CHUNKS);
        let store = if args.revocation_list {
            let store = open_store(args).await?;
            client = client.revocation_list(store.clone());
            Some(store)
        } else {
            None
        };
        let manager = SessionManager::client_side(config.sealing_keys(keys), client)
            .map_err(|e| format!("session settings: {}", error_chain(&e)))?;
        return Ok((manager, store));
    }
    let store = open_store(args).await?;
    let manager = SessionManager::new(store.clone(), config)
        .map_err(|e| format!("session settings: {}", args.store.explain_error(&e)))?;
    Ok((manager, Some(store)))
}

async fn open_store(args: &Args) -> Result<Arc<dyn SessionStore>, String> {
    let url = &args.store;
    let opened = if args.no_migrate {
        url.open_without_migrating().await
    } else {
        url.open().await
    };
    opened.map_err(|e| format!("opening {url}: {}", url.explain_error(&e)))
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub async fn run(args: Args) -> Result<(), String> {
    let (manager, store) = manager(&args).await?;
    let tokens = Tokens::from_env()?;
    let transport = if args.client_side {
        cookies(args.dev_cookies)
    } else {
        transport(args.dev_cookies)
    };
    let purge = store.map(|store| PurgeTask::spawn(store, Duration::from_secs(60)));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {}", args.listen, error_chain(&e)))?;
    if args.client_side {
        tracing::info!(
            revocation_list = args.revocation_list,
            store = %args.store,
            "client-side sessions: each session is sealed in its cookie"
        );
    }
    tracing::info!(store = %args.store, "session demo on http://{}", args.listen);
    axum::serve(listener, router_with(manager, transport, tokens))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server: {}", error_chain(&e)))?;
    if let Some(purge) = purge {
        purge.shutdown().await;
    }
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
