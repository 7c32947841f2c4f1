//! [`SessionManager`]: loads sessions and answers per-user questions.

use std::sync::Arc;

use crate::client::{self, ClientSide, NoStore, DEFAULT_COOKIE_NAME};
use crate::clock::{Clock, SystemClock};
use crate::codec::decode;
use crate::config::SessionConfig;
use crate::error::{Error, Result};
use crate::expiry::{absolute_deadline, deadline, effective_deadline, last_activity, touch_due};
use crate::record::{Record, Timestamp};
use crate::seal::{Binding, KeyRing};
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
    /// `Some` for client-side sessions (the data sealed in the cookie).
    client: Option<ClientSide>,
}

/// [`Error::Unsupported`] for a call that needs server-side state.
fn needs_server(what: &'static str) -> Error {
    Error::Unsupported {
        what,
        why: "client-side sessions keep no server-side list of sessions; \
              use server-side sessions (SessionManager::new with a store)",
    }
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
                client: None,
            }),
        })
    }

    /// A manager of client-side sessions: the whole session is sealed into
    /// the cookie with the config's
    /// [`sealing_keys`](SessionConfig::sealing_keys), and no store is needed.
    /// Handlers use the same [`Session`] API; read [`ClientSide`] for what
    /// the mode cannot do.
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) if the config has
    /// no sealing keys, sets a per-user cap (which needs a server-side list
    /// of sessions), or is otherwise inconsistent.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use session_core::{ClientSide, KeyRing, SessionConfig, SessionManager, TokenAction};
    ///
    /// let config = SessionConfig::default().sealing_keys(KeyRing::new(1, KeyRing::generate_key()));
    /// let manager = SessionManager::client_side(config, ClientSide::new())?;
    ///
    /// let session = manager.load(None).await?;
    /// session.login("alice")?;
    /// let cookie = match session.commit().await? {
    ///     TokenAction::IssueCookies { cookies, .. } => cookies[0].value().to_owned(),
    ///     other => panic!("a new session sets its cookie, got {other:?}"),
    /// };
    ///
    /// // The next request presents the cookie: no store was involved.
    /// let again = manager.load(Some(&cookie)).await?;
    /// assert_eq!(again.user().as_deref(), Some("alice"));
    /// # Ok::<(), session_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn client_side(config: SessionConfig, client: ClientSide) -> Result<Self> {
        Self::client_side_with_clock(config, client, Arc::new(SystemClock))
    }

    /// As [`client_side`](Self::client_side), reading time from `clock`.
    pub fn client_side_with_clock(
        config: SessionConfig,
        client: ClientSide,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        config.validate()?;
        client.validate()?;
        if config.keys().is_none() {
            return Err(Error::InvalidInput(
                "client-side sessions need sealing keys (SessionConfig::sealing_keys)".into(),
            ));
        }
        if config.max_per_user().is_some() {
            return Err(Error::InvalidInput(
                "max_sessions_per_user needs server-side sessions: client-side sessions \
                 cannot count a user's sessions"
                    .into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(ManagerInner {
                store: Arc::new(NoStore),
                config,
                clock,
                client: Some(client),
            }),
        })
    }

    /// The client-side settings, for a manager of client-side sessions.
    pub fn client(&self) -> Option<&ClientSide> {
        self.inner.client.as_ref()
    }

    /// Whether sessions live in the cookie ([`client_side`](Self::client_side))
    /// rather than in a store.
    pub fn is_client_side(&self) -> bool {
        self.inner.client.is_some()
    }

    /// The key ring that seals stored data (never for client-side sessions,
    /// whose records are sealed whole into the cookie).
    pub(crate) fn data_keys(&self) -> Option<&KeyRing> {
        match self.inner.client {
            Some(_) => None,
            None => self.inner.config.keys(),
        }
    }

    /// The key ring that seals client-side cookies.
    pub(crate) fn cookie_keys(&self) -> &KeyRing {
        self.inner
            .config
            .keys()
            .expect("a client-side manager is built with sealing keys")
    }

    /// The store underneath. For client-side sessions, a placeholder whose
    /// every call is [`Error::Unsupported`](crate::Error::Unsupported)
    /// (except `purge_expired`, which has nothing to do).
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
        Session::fresh(self.clone(), false, self.default_cookie())
    }

    fn default_cookie(&self) -> Option<Arc<str>> {
        self.inner
            .client
            .as_ref()
            .map(|_| Arc::from(DEFAULT_COOKIE_NAME))
    }

    /// A new, empty session whose [`TokenAction`](crate::TokenAction) tells
    /// the client to forget the token it presented (for a transport that
    /// gives up on a session whose stored data cannot be decoded).
    pub fn replacement_session(&self) -> Session {
        Session::fresh(self.clone(), true, self.default_cookie())
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
    ///
    /// For client-side sessions, `token` is the sealed cookie value (bound
    /// to the cookie name [`DEFAULT_COOKIE_NAME`](crate::client::DEFAULT_COOKIE_NAME);
    /// see [`load_cookie`](Self::load_cookie)), and a value that does not
    /// open, has expired or was revoked yields a new empty session.
    pub async fn load(&self, token: Option<&str>) -> Result<Session> {
        if self.is_client_side() {
            return self.load_cookie(DEFAULT_COOKIE_NAME, token).await;
        }
        let Some(text) = token else {
            return Ok(self.new_session());
        };
        match SessionToken::parse(text) {
            Some(token) => self.load_token(token).await,
            None => Ok(self.new_session()),
        }
    }

    /// The session for a request that presented `value` in the cookie
    /// `name` (chunks already joined with [`ClientSide::join`]), or a new
    /// empty one. For server-side sessions `value` is the token and `name`
    /// plays no part; for client-side sessions the value is bound to `name`.
    ///
    /// A client-side cookie that does not open (any change, truncation or
    /// extension, another cookie's value, a retired key), that has passed its
    /// idle or absolute deadline (read from inside the seal, never from the
    /// cookie's `Max-Age`), or that the revocation list refuses, yields a new
    /// empty session, never an error. The only error is the revocation
    /// list's store failing.
    pub async fn load_cookie(&self, name: &str, value: Option<&str>) -> Result<Session> {
        let Some(client) = &self.inner.client else {
            return match value.and_then(SessionToken::parse) {
                Some(token) => self.load_token(token).await,
                None => Ok(self.new_session()),
            };
        };
        let fresh = || Session::fresh(self.clone(), false, Some(Arc::from(name)));
        let Some(value) = value else {
            return Ok(fresh());
        };
        let Some(client::Opened {
            mut record,
            issued_at,
            absolute_at,
        }) = client::open(self.cookie_keys(), name, value)
        else {
            return Ok(fresh());
        };
        let config = &self.inner.config;
        let Ok(payload) = decode(&record.data, Binding::of(&record), None) else {
            return Ok(fresh());
        };
        // The sealed absolute deadline, or the configured one if that is
        // now shorter.
        record.expires_at = deadline(config, record.created_at, payload.last_seen).min(absolute_at);
        let now = self.now();
        if record.expires_at <= now {
            return Ok(fresh());
        }
        let mut list_record = None;
        if let Some(list) = &client.revocations {
            let user = record.user.as_deref();
            let (refused, read) = list.check(user, &record.key, issued_at, now).await?;
            if refused {
                return Ok(fresh());
            }
            list_record = read;
        }
        let due = touch_due(config, &record, payload.last_seen, now).is_some();
        let state = client::CookieState {
            issued_at,
            absolute_at,
            issue_after: Timestamp::EPOCH,
            list_record,
        };
        Ok(Session::opened(
            self.clone(),
            Arc::from(name),
            record,
            payload,
            due,
            state,
        ))
    }

    /// As [`load`](Self::load), for an already parsed token.
    /// [`Error::Unsupported`](crate::Error::Unsupported) for client-side
    /// sessions, which have no token.
    pub async fn load_token(&self, token: SessionToken) -> Result<Session> {
        if self.is_client_side() {
            return Err(Error::Unsupported {
                what: "loading a session by token",
                why: "client-side sessions have no token: load the cookie with load_cookie",
            });
        }
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
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) for client-side
    /// sessions: call [`Session::logout`] in the session's own request.
    pub async fn destroy(&self, token: &str) -> Result<bool> {
        if self.is_client_side() {
            return Err(Error::Unsupported {
                what: "ending a session by token",
                why: "client-side sessions have no token: call Session::logout in its request",
            });
        }
        match SessionToken::parse(token) {
            Some(token) => self.inner.store.delete(&token.key()).await,
            None => Ok(false),
        }
    }

    /// The live sessions of `user`, oldest first.
    /// [`Error::Unsupported`](crate::Error::Unsupported) for client-side
    /// sessions (use [`Session::info`] for the current one).
    pub async fn list_user(&self, user: &str) -> Result<Vec<SessionInfo>> {
        if self.is_client_side() {
            return Err(needs_server("listing a user's sessions"));
        }
        let records = self.live_records(user).await?;
        let mut out: Vec<SessionInfo> = records.iter().map(|r| self.info(r)).collect();
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }

    /// Ends every session of `user`, except `keep` when given ("log out other
    /// devices"). Returns how many ended.
    ///
    /// For client-side sessions this needs a
    /// [`revocation_list`](ClientSide::revocation_list) (else
    /// [`Error::Unsupported`](crate::Error::Unsupported)): every cookie of
    /// `user` issued before now is refused from the next request on, `keep`
    /// gets a new credential at its commit, and the count returned is 0 (the
    /// server does not know how many cookies there were). The call returns
    /// once the clock has passed the not-before instant (at most a
    /// millisecond), so a login after it is never refused by it.
    pub async fn revoke_user(&self, user: &str, keep: Option<&Session>) -> Result<u64> {
        if let Some(client) = &self.inner.client {
            let Some(list) = &client.revocations else {
                return Err(Error::Unsupported {
                    what: "ending a user's client-side sessions",
                    why: "it needs a revocation list (ClientSide::revocation_list)",
                });
            };
            let now = self.now();
            // Any cookie issued up to now ends by now + absolute timeout.
            let until = absolute_deadline(&self.inner.config, now);
            let keep = keep.filter(|s| s.user().as_deref() == Some(user));
            let known = keep.and_then(Session::list_record);
            let written = list.revoke_user(user, now, until, now, known).await?;
            if let Some(keep) = keep {
                keep.keep_after(now, written);
            }
            // Cookies issued up to `now` are refused, the millisecond of
            // `now` included: return only once this server's clock has moved
            // past it, so that a login after this call is never refused.
            // (Bounded, for a clock that does not move by itself.)
            for _ in 0..20 {
                if self.now() > now {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            return Ok(0);
        }
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
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) for client-side
    /// sessions.
    pub async fn revoke(&self, user: &str, id: SessionId) -> Result<bool> {
        if self.is_client_side() {
            return Err(needs_server("ending another session by id"));
        }
        self.inner.store.delete_id(user, id).await
    }

    /// Whether `user` has a live session `id`: one store call, no session
    /// data decoded (for checks on every request, such as access tokens'
    /// strict check). [`Error::Unsupported`](crate::Error::Unsupported) for
    /// client-side sessions.
    pub async fn is_live(&self, user: &str, id: SessionId) -> Result<bool> {
        if self.is_client_side() {
            return Err(needs_server("checking whether a session is live"));
        }
        Ok(self.live_records(user).await?.iter().any(|r| r.id == id))
    }

    pub(crate) fn revocations(&self) -> Option<&crate::revocation::Revocations> {
        self.inner.client.as_ref()?.revocations.as_ref()
    }

    pub(crate) async fn live_records(&self, user: &str) -> Result<Vec<Record>> {
        let now = self.now();
        let mut records = self.inner.store.list_user(user).await?;
        records.retain(|r| effective_deadline(&self.inner.config, r) > now);
        Ok(records)
    }

    pub(crate) fn info(&self, record: &Record) -> SessionInfo {
        let config = &self.inner.config;
        let (meta, last_seen) = match decode(&record.data, Binding::of(record), self.data_keys()) {
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
