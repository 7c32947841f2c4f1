//! Access tokens (`session-jwt`): `POST /api/token` issues one for the
//! current session, `GET /api/whoami` verifies one without a store,
//! `GET /api/whoami/strict` also checks its session is live, and
//! `/.well-known/jwks.json` publishes the keys.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use session_axum::{Access, CurrentSession, StrictAccess};
use session_jwt::{Algorithm, Issuer, KeySet, SigningKey, Verifier, VerifierConfig};

use crate::app::AppState;
use crate::util::{error, rfc3339};

/// `iss` of the demo's tokens.
pub const ISSUER: &str = "session-demo";
/// `aud` of the demo's tokens.
pub const AUDIENCE: &str = "session-demo-api";
/// The variable that may hold the signing keys: `KID:BASE64[,KID:BASE64…]`,
/// each an Ed25519 seed of 32 bytes; the last one signs. Without it the demo
/// makes a key at start-up (tokens then end with the process).
pub const KEYS_VAR: &str = "SESSION_DEMO_JWT_KEYS";

/// The issuer and the verifier of the demo's access tokens.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// Mints tokens for live sessions.
    pub issuer: Issuer,
    /// Checks them.
    pub verifier: Verifier,
}

impl Tokens {
    /// Tokens signed with `keys`, living `lifetime`.
    pub fn new(keys: KeySet, lifetime: Duration) -> Self {
        let verifier = keys
            .verifier(VerifierConfig::new(ISSUER, AUDIENCE))
            .expect("the demo's own Ed25519 keys make a verifier");
        Self {
            issuer: Issuer::new(keys, ISSUER, AUDIENCE).lifetime(lifetime),
            verifier,
        }
    }

    /// A fresh Ed25519 key made now, tokens living 5 minutes.
    pub fn generated() -> Self {
        let kid = format!("demo-{}", &uuid_like()[..8]);
        Self::new(
            KeySet::new(SigningKey::generate(kid, Algorithm::EdDSA)),
            session_jwt::DEFAULT_LIFETIME,
        )
    }

    /// The keys in [`KEYS_VAR`], or a fresh one if it is not set.
    pub fn from_env() -> Result<Self, String> {
        let Ok(text) = std::env::var(KEYS_VAR) else {
            return Ok(Self::generated());
        };
        let mut set: Option<KeySet> = None;
        for entry in text.split(',').map(str::trim) {
            let (kid, seed) = entry
                .split_once(':')
                .ok_or_else(|| format!("{KEYS_VAR}: an entry is not KID:BASE64"))?;
            let seed = crate::keys::decode_key(seed)
                .map_err(|e| format!("{KEYS_VAR}: key {kid:?}: {e}"))?;
            let key = SigningKey::from_secret(kid, Algorithm::EdDSA, seed)
                .map_err(|e| format!("{KEYS_VAR}: {e}"))?;
            set = Some(match set {
                None => KeySet::new(key),
                Some(set) => set.rotate(key).map_err(|e| format!("{KEYS_VAR}: {e}"))?,
            });
        }
        let keys = set.ok_or_else(|| format!("{KEYS_VAR}: no keys"))?;
        Ok(Self::new(keys, session_jwt::DEFAULT_LIFETIME))
    }
}

fn uuid_like() -> String {
    session_core::SessionId::generate().to_string()
}

/// The token routes, under `/api`, and the JWKS document at the root.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/token", post(issue))
        .route("/whoami", get(whoami))
        .route("/whoami/strict", get(whoami_strict))
}

/// `/.well-known/jwks.json`.
pub fn well_known() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

async fn issue(State(state): State<AppState>, session: CurrentSession) -> Response {
    match state.tokens.issuer.issue(&session) {
        Ok(token) => {
            // From the token's own issue time: whole seconds, as in `exp`.
            let expires_in = token.claims().exp.since(token.claims().iat).as_secs();
            let mut res = Json(json!({
                "access_token": token.as_str(),
                "token_type": "Bearer",
                "expires_in": expires_in,
            }))
            .into_response();
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => error(StatusCode::UNAUTHORIZED, e.to_string()),
    }
}

fn claims_json(c: &session_jwt::AccessClaims) -> Json<serde_json::Value> {
    Json(json!({
        "user": c.sub,
        "session": c.sid.to_string(),
        "expires_at": rfc3339(c.exp),
    }))
}

async fn whoami(Access(claims): Access) -> Json<serde_json::Value> {
    claims_json(&claims)
}

async fn whoami_strict(StrictAccess(claims): StrictAccess) -> Json<serde_json::Value> {
    claims_json(&claims)
}

async fn jwks(State(state): State<AppState>) -> Response {
    let body = state.tokens.issuer.keys().jwks_json();
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}
