//! [`SessionManager`]: loads sessions and answers per-user questions.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::codec::decode;
use crate::config::SessionConfig;
use crate::error::Result;
use crate::expiry::{effective_deadline, last_activity, touch_due};
use crate::record::{Record, Timestamp};
use crate::seal::Binding;
use crate::session::Session;
use crate::store::SessionStore;
use crate::token::{SessionId, SessionToken};
use std::collections::BTreeMap;

/// Session policy over a [`SessionStore`]: timeouts, rotation, concurrency,
/// sealing. Cheap to clone; share one per application.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
///
/// let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())?;
///
/// // A request without a cookie: nothing is stored until something is written.
/// let session = manager.load(None).await?;
/// session.insert("theme", &"dark")?;
/// session.login("alice")?;
/// let issued = session.commit().await?; // the transport sends this token back
/// let token = issued.token().expect("a new session issues a token").expose();
///
/// // The next request presents the token.
/// let again = manager.load(Some(&token)).await?;
/// assert_eq!(again.user().as_deref(), Some("alice"));
/// assert_eq!(again.get::<String>("theme")?.as_deref(), Some("dark"));
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct SessionManager {
    inner: Arc<ManagerInner>,
}

#[derive(Debug)]
struct ManagerInner {
    store: Arc<dyn SessionStore>,
    config: SessionConfig,
    clock: Arc<dyn Clock>,
}

/// One of a user's live sessions, for an "active sessions" page.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionInfo {
    /// The stable id, to show and to revoke with [`SessionManager::revoke`].
    pub id: SessionId,
    /// When the session was created.
    pub created_at: Timestamp,
    /// The last request known to have kept it alive (to the touch granularity).
    pub last_active: Timestamp,
    /// When it ends unless used again.
    pub expires_at: Timestamp,
    /// Metadata recorded with [`Session::set_meta`] (user agent, …). Empty when
    /// the stored data cannot be decoded (for example, sealed under a retired key).
    pub meta: BTreeMap<String, String>,
}

impl SessionManager {
    /// A manager on the wall clock; [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// if the config is inconsistent.
    pub fn new(store: Arc<dyn SessionStore>, config: SessionConfig) -> Result<Self> {
        Self::with_clock(store, config, Arc::new(SystemClock))
    }

    /// A manager that reads time from `clock` (tests use
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(ManagerInner {
                store,
                config,
                clock,
            }),
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The policy settings.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// A new, empty session that is stored only once something is written.
    pub fn new_session(&self) -> Session {
        Session::fresh(self.clone(), false)
    }

    /// A new, empty session whose [`TokenAction`](crate::TokenAction) tells
    /// the client to forget the token it presented (for a transport that
    /// gives up on a session whose stored data cannot be decoded).
    pub fn replacement_session(&self) -> Session {
        Session::fresh(self.clone(), true)
    }

    /// The session for a request that presented `token` (the cookie value or
    /// bearer token), or a new empty one.
    ///
    /// A token that does not parse costs no store round trip. A token that
    /// parses but loads nothing (expired, revoked, unknown) yields a new empty
    /// session. Neither tells the client to drop its cookie: a request sent
    /// just before another tab logged in carries the pre-login token, and
    /// clearing it would throw away the fresh one. Stored data that cannot be
    /// decoded is [`Error::Decode`](crate::Error::Decode).
    pub async fn load(&self, token: Option<&str>) -> Result<Session> {
        let Some(text) = token else {
            return Ok(self.new_session());
        };
        match SessionToken::parse(text) {
            Some(token) => self.load_token(token).await,
            None => Ok(self.new_session()),
        }
    }

    /// As [`load`](Self::load), for an already parsed token.
    pub async fn load_token(&self, token: SessionToken) -> Result<Session> {
        let Some(record) = self.inner.store.load(&token.key()).await? else {
            return Ok(self.new_session());
        };
        let now = self.now();
        if effective_deadline(&self.inner.config, &record) <= now {
            return Ok(self.new_session());
        }
        let payload = decode(&record.data, Binding::of(&record), self.inner.config.keys())?;
        let due = touch_due(&self.inner.config, &record, payload.last_seen, now).is_some();
        Ok(Session::loaded(self.clone(), token, record, payload, due))
    }

    /// Ends the session a client presents without loading it first (one
    /// store round trip): for logout endpoints that need no session data.
    /// `false` if the token does not parse or names no live session.
    pub async fn destroy(&self, token: &str) -> Result<bool> {
        match SessionToken::parse(token) {
            Some(token) => self.inner.store.delete(&token.key()).await,
            None => Ok(false),
        }
    }

    /// The live sessions of `user`, oldest first.
    pub async fn list_user(&self, user: &str) -> Result<Vec<SessionInfo>> {
        let records = self.live_records(user).await?;
        let mut out: Vec<SessionInfo> = records.iter().map(|r| self.info(r)).collect();
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }

    /// Ends every session of `user`, except `keep` when given ("log out other
    /// devices"). Returns how many ended.
    pub async fn revoke_user(&self, user: &str, keep: Option<&Session>) -> Result<u64> {
        let keep = keep.and_then(Session::key);
        self.inner.store.delete_user(user, keep.as_ref()).await
    }

    /// Ends the session `id` if it belongs to `user`; `false` if there is no
    /// such live session of that user.
    ///
    /// One store call ([`SessionStore::delete_id`]), which finds the session
    /// under whatever key it has now: a rotation running at the same time
    /// (a login, a privilege change) cannot make it miss, so `false` always
    /// means the session no longer exists.
    pub async fn revoke(&self, user: &str, id: SessionId) -> Result<bool> {
        self.inner.store.delete_id(user, id).await
    }

    pub(crate) async fn live_records(&self, user: &str) -> Result<Vec<Record>> {
        let now = self.now();
        let mut records = self.inner.store.list_user(user).await?;
        records.retain(|r| effective_deadline(&self.inner.config, r) > now);
        Ok(records)
    }

    pub(crate) fn info(&self, record: &Record) -> SessionInfo {
        let config = &self.inner.config;
        let (meta, last_seen) = match decode(&record.data, Binding::of(record), config.keys()) {
            Ok(p) => (p.meta, p.last_seen),
            Err(_) => (BTreeMap::new(), record.created_at),
        };
        SessionInfo {
            id: record.id,
            created_at: record.created_at,
            last_active: last_activity(config, record, last_seen),
            expires_at: effective_deadline(config, record),
            meta,
        }
    }
}
