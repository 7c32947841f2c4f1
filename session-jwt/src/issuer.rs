//! [`Issuer`]: mints access tokens from live sessions.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Header;
use session_core::{Clock, Session, SessionManager, SystemClock, Timestamp};

use crate::claims::{AccessClaims, AccessToken, Wire};
use crate::error::Error;
use crate::keys::KeySet;

/// How long an access token lives unless configured: 5 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Mints access tokens for live, logged-in server-side sessions, signed
/// with the [`KeySet`]'s signing key. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Issuer {
    keys: KeySet,
    issuer: Arc<str>,
    audience: Arc<str>,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl Issuer {
    /// Tokens with `iss` = `issuer` and `aud` = `audience`, living
    /// [`DEFAULT_LIFETIME`].
    pub fn new(keys: KeySet, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            keys,
            issuer: Arc::from(issuer.into()),
            audience: Arc::from(audience.into()),
            lifetime: DEFAULT_LIFETIME,
            clock: Arc::new(SystemClock),
        }
    }

    /// How long each token lives (whole seconds, at least 1), never past
    /// its session's absolute deadline. Shorter means a revoked session's
    /// tokens stop sooner under the plain check, at the cost of more
    /// refreshes.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Duration::from_secs(lifetime.as_secs().max(1));
        self
    }

    /// Reads time from `clock` (tests use `ManualClock`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The keys it signs with.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// An access token for `session`, which must be a stored server-side
    /// session with a principal ([`Error::NotLoggedIn`],
    /// [`Error::ClientSideSession`]) that has not reached its absolute
    /// deadline ([`Error::SessionExpired`]). The session is the refresh
    /// credential: once it ends (logout, revoked, expired) it no longer
    /// loads, and no token is issued from it.
    ///
    /// This trusts `session` as loaded: pass the session of the current
    /// request. A `Session` kept beyond its request (a WebSocket task, say)
    /// would go on minting tokens after a revocation; use
    /// [`issue_live`](Self::issue_live) there.
    pub fn issue(&self, session: &Session) -> Result<AccessToken, Error> {
        self.mint(session)
    }

    /// [`issue`](Self::issue), after confirming in `manager`'s store that
    /// the session is still live (one store call): for sessions held longer
    /// than a request.
    pub async fn issue_live(
        &self,
        session: &Session,
        manager: &SessionManager,
    ) -> Result<AccessToken, Error> {
        let token = self.mint(session)?;
        let claims = token.claims();
        match manager.is_live(&claims.sub, claims.sid).await {
            Ok(true) => Ok(token),
            Ok(false) => Err(Error::SessionEnded),
            Err(e) => Err(Error::Store(e)),
        }
    }

    fn mint(&self, session: &Session) -> Result<AccessToken, Error> {
        if session.is_client_side() {
            return Err(Error::ClientSideSession);
        }
        let (Some(sub), Some(sid), false) = (session.user(), session.id(), session.is_new()) else {
            return Err(Error::NotLoggedIn);
        };
        let deadline = session.absolute_deadline().ok_or(Error::NotLoggedIn)?;
        // Whole seconds, as JWT times are: the token never outlives the
        // session's absolute deadline.
        let now = Timestamp::from_millis(self.clock.now().as_millis() / 1000 * 1000);
        let latest = Timestamp::from_millis(deadline.as_millis() / 1000 * 1000);
        let exp = now.saturating_add(self.lifetime).min(latest);
        if exp <= now {
            return Err(Error::SessionExpired);
        }
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            aud: self.audience.to_string(),
            sub,
            sid,
            iat: now,
            nbf: now,
            exp,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let key = self.keys.signing();
        let mut header = Header::new(key.algorithm().jwt());
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &Wire::from_claims(&claims), key.encoding())
            .map_err(Error::Signing)?;
        Ok(AccessToken { token, claims })
    }
}
