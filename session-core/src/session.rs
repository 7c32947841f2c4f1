//! [`Session`]: the request-scoped handle, and how it commits.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::{self, CookieState, SealedCookie};
use crate::codec::{decode, encode, Payload};
use crate::error::{Error, Result};
use crate::expiry::{absolute_deadline, deadline};
use crate::manager::{SessionInfo, SessionManager};
use crate::record::check_user_name;
use crate::record::{Record, Timestamp};
use crate::revocation::NEVER_REFUSED;
use crate::seal::{Binding, KeyRing};
use crate::token::{SessionId, SessionKey, SessionToken};

/// What the transport (cookie or bearer) must tell the client after a commit.
///
/// Non-exhaustive: a transport that meets a variant it does not know should
/// fail loudly (answer 500) rather than send nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenAction {
    /// Nothing: the client's token (or lack of one) stays as it is.
    #[default]
    Unchanged,
    /// Send this token (a new session, a rotation, or a committed
    /// [`set_remember`](Session::set_remember)).
    Issue {
        /// The token to send.
        token: SessionToken,
        /// `Some` for remembered sessions: how long the client should keep the
        /// token (never beyond the absolute timeout). `None`: until the browser
        /// closes.
        max_age: Option<Duration>,
    },
    /// Client-side sessions: set these cookies (the session sealed, in one
    /// cookie or in chunks), each with `max_age` when `Some`, and clear the
    /// chunks of the same name that the request presented and this list does
    /// not hold.
    IssueCookies {
        /// The cookies to set, the first under the configured name.
        cookies: Vec<SealedCookie>,
        /// As for [`TokenAction::Issue`].
        max_age: Option<Duration>,
    },
    /// Tell the client to forget its token (logout, revoked, unknown token);
    /// for client-side sessions, its cookie and every chunk of it.
    Clear,
}

impl TokenAction {
    /// The token to send, for [`TokenAction::Issue`].
    pub fn token(&self) -> Option<&SessionToken> {
        match self {
            Self::Issue { token, .. } => Some(token),
            _ => None,
        }
    }
}

/// Gets the current value's JSON text, returns the next value's.
type Modifier = Box<dyn FnMut(Option<&str>) -> Result<Arc<str>> + Send>;

/// One change a request made, kept so that it can be re-applied on top of a
/// newer stored version after a conflict.
enum Op {
    /// A key and the JSON text of its value, shared with the view.
    Set(Arc<str>, Arc<str>),
    Remove(String),
    Modify(Arc<str>, Modifier),
    Clear,
    Meta(String, String),
    User(Option<String>),
    Remember(bool),
}

#[derive(Clone, Default)]
struct View {
    payload: Payload,
    user: Option<String>,
}

/// Applies one change to `view`; on error `view` is unchanged.
fn apply_one(op: &mut Op, view: &mut View) -> Result<()> {
    let values = &mut view.payload.values;
    match op {
        Op::Set(k, v) => values.insert(k, v.clone()),
        Op::Remove(k) => values.remove(k),
        Op::Modify(k, f) => {
            let next = f(values.get(k))?;
            values.insert(k, next);
        }
        Op::Clear => values.clear(),
        Op::Meta(k, v) => {
            view.payload.meta.insert(k.clone(), v.clone());
        }
        Op::User(u) => view.user = u.clone(),
        Op::Remember(r) => view.payload.remember = *r,
    }
    Ok(())
}

/// A value's JSON text, in an allocation of exactly its size.
///
/// It is written into a buffer the thread reuses, then copied once: writing
/// straight into a `String` would grow it and then shrink it, three trips
/// to the allocator for every value set.
fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Arc<str>> {
    /// A buffer kept beyond this is let go, not held by an idle thread.
    const KEEP: usize = 16 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let write = |buf: &mut Vec<u8>| -> Result<Arc<str>> {
        serde_json::to_writer(&mut *buf, value)
            .map_err(|e| Error::InvalidInput(format!("session value cannot be serialized: {e}")))?;
        // serde_json writes UTF-8 only; checking it again costs a pass over
        // the text and keeps this free of `unsafe`.
        let text = std::str::from_utf8(buf)
            .map_err(|e| Error::InvalidInput(format!("session value is not UTF-8: {e}")))?;
        Ok(Arc::from(text))
    };
    SCRATCH
        .try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                let out = write(&mut buf);
                if buf.capacity() > KEEP {
                    *buf = Vec::new();
                }
                out
            }
            // A value whose `Serialize` sets a session value itself.
            Err(_) => write(&mut Vec::new()),
        })
        // The thread is shutting down and its buffer is gone.
        .unwrap_or_else(|_| write(&mut Vec::new()))
}

/// `view` with `ops` applied.
fn apply(ops: &mut [Op], mut view: View) -> Result<View> {
    for op in ops {
        apply_one(op, &mut view)?;
    }
    Ok(view)
}

struct State {
    /// The client's current token, if the session is stored.
    token: Option<SessionToken>,
    /// The stored record as last read or written (`None`: not stored).
    stored: Option<Record>,
    /// The stored data and user, decoded (empty when not stored, or logged
    /// out). The first change hands it over to `view` rather than copying
    /// it; the rare paths that need it again decode it from `stored`.
    /// Never `None` while `view` is.
    base: Option<View>,
    /// Changes not yet committed, in order.
    ops: Vec<Op>,
    /// `base` with `ops` applied: what this request sees. `None` while there
    /// are no changes.
    view: Option<View>,
    rotate: bool,
    destroy: bool,
    /// Whether an idle extension is due (decided at load); its deadline is
    /// computed from the clock at commit, so a slow request never plans an
    /// earlier one than a later request already wrote.
    touch_due: bool,
    action: TokenAction,
    /// Bumped by `logout`, which throws pending changes away: a commit that
    /// was planned before must not drain what came after.
    epoch: u64,
    /// Client-side sessions: what the cookie holds besides the record.
    cookie: CookieState,
}

impl State {
    /// `base`, decoded again from `stored` if the view took it.
    fn base(&mut self, keys: Option<&KeyRing>) -> Result<&mut View> {
        if self.base.is_none() {
            let view = match (&self.stored, self.destroy) {
                (Some(record), false) => View {
                    payload: decode(&record.data, Binding::of(record), keys)?,
                    user: record.user.clone(),
                },
                // Not stored, or logged out: changes start from nothing.
                _ => View::default(),
            };
            self.base = Some(view);
        }
        Ok(self.base.get_or_insert_with(View::default))
    }

    /// Builds `view` again from `base` and the pending changes.
    fn refresh_view(&mut self, keys: Option<&KeyRing>) -> Result<()> {
        if let Err(e) = self.base(keys) {
            // The stored data no longer decodes (it did when it was read):
            // commit nothing built on it.
            self.ops.clear();
            self.view = None;
            self.base = Some(View::default());
            return Err(e);
        }
        self.view = if self.ops.is_empty() {
            // The usual case after a commit: no copy of the data.
            None
        } else {
            let base = self.base.clone().unwrap_or_default();
            Some(apply(&mut self.ops, base)?)
        };
        Ok(())
    }

    fn current(&self) -> &View {
        self.view
            .as_ref()
            .or(self.base.as_ref())
            .expect("base is kept while there is no view")
    }

    /// The session is gone from the store (revoked or deleted meanwhile):
    /// forget it. The client is not told to drop its cookie: after a
    /// rotation in another tab that cookie may already hold the new token.
    fn forget(&mut self) {
        self.token = None;
        self.stored = None;
        self.base = Some(View::default());
        self.ops.clear();
        self.view = None;
        self.rotate = false;
        self.touch_due = false;
        self.action = TokenAction::Unchanged;
    }
}

struct Shared {
    manager: SessionManager,
    state: Mutex<State>,
    /// Serializes commits of this handle; the state lock is never held across
    /// an await.
    gate: tokio::sync::Mutex<()>,
    /// Client-side sessions: the cookie name the seal is bound to.
    cookie: Option<Arc<str>>,
}

/// One request's view of its session. Cheap to clone; clones share state.
///
/// Reads and writes are local until [`commit`](Session::commit), which the
/// HTTP layer calls before the response leaves. A commit is a versioned write:
/// if another request changed the session meanwhile, this request's changes
/// are re-applied key by key on top of the newer version, so concurrent
/// requests that touch different keys both land. For read-modify-write (a
/// counter), use [`modify`](Session::modify), whose closure is re-run instead.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Shared>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("Session")
            .field("id", &st.stored.as_ref().map(|r| r.id))
            .field("user", &st.current().user)
            .field("pending_changes", &st.ops.len())
            .finish_non_exhaustive()
    }
}

/// What a planned write covers, for when it has landed.
#[derive(Clone, Copy)]
struct Written {
    /// How many pending changes it includes (the first ones).
    ops: usize,
    /// Whether one of them is a login.
    login: bool,
    /// Whether one of them sets "remember me".
    remember: bool,
    /// The logout epoch it was planned in.
    epoch: u64,
    /// The `last_seen` it stores.
    at: Timestamp,
}

enum Plan {
    Nothing,
    Create(Record, SessionToken),
    Update(Record),
    Rotate(SessionKey, Record, SessionToken),
    Touch(SessionKey, Timestamp),
}

/// The order in which the per-user cap keeps sessions: most recently active
/// first, ties broken by id. Every login ranks a user's sessions the same
/// way, so concurrent logins agree on which ones stay.
type CapRank = std::cmp::Reverse<(Timestamp, SessionId)>;

impl Session {
    pub(crate) fn fresh(
        manager: SessionManager,
        clear_client_token: bool,
        cookie: Option<Arc<str>>,
    ) -> Self {
        let action = if clear_client_token {
            TokenAction::Clear
        } else {
            TokenAction::Unchanged
        };
        Self::with_state(
            manager,
            State {
                token: None,
                stored: None,
                base: Some(View::default()),
                ops: Vec::new(),
                view: None,
                rotate: false,
                destroy: false,
                touch_due: false,
                action,
                epoch: 0,
                cookie: CookieState::default(),
            },
            cookie,
        )
    }

    pub(crate) fn loaded(
        manager: SessionManager,
        token: SessionToken,
        record: Record,
        payload: Payload,
        touch_due: bool,
    ) -> Self {
        let base = View {
            payload,
            user: record.user.clone(),
        };
        Self::with_state(
            manager,
            State {
                token: Some(token),
                stored: Some(record),
                view: None,
                base: Some(base),
                ops: Vec::new(),
                rotate: false,
                destroy: false,
                touch_due,
                action: TokenAction::Unchanged,
                epoch: 0,
                cookie: CookieState::default(),
            },
            None,
        )
    }

    /// A client-side session opened from its cookie `name`.
    pub(crate) fn opened(
        manager: SessionManager,
        name: Arc<str>,
        record: Record,
        payload: Payload,
        touch_due: bool,
        cookie: CookieState,
    ) -> Self {
        let base = View {
            payload,
            user: record.user.clone(),
        };
        Self::with_state(
            manager,
            State {
                token: None,
                stored: Some(record),
                view: None,
                base: Some(base),
                ops: Vec::new(),
                rotate: false,
                destroy: false,
                touch_due,
                action: TokenAction::Unchanged,
                epoch: 0,
                cookie,
            },
            Some(name),
        )
    }

    fn with_state(manager: SessionManager, state: State, cookie: Option<Arc<str>>) -> Self {
        Self {
            inner: Arc::new(Shared {
                manager,
                state: Mutex::new(state),
                gate: tokio::sync::Mutex::new(()),
                cookie,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, mut op: Op) -> Result<()> {
        let mut guard = self.state();
        let st = &mut *guard;
        let view = match st.view.take() {
            Some(view) => view,
            // The first change: the view takes the base over, no copy.
            None => st.base.take().expect("base is kept while there is no view"),
        };
        let view = st.view.insert(view);
        match apply_one(&mut op, view) {
            Ok(()) => st.ops.push(op),
            Err(e) => {
                // `apply_one` left the view as it was.
                if st.ops.is_empty() {
                    st.base = st.view.take();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// The stable id, once the session is stored.
    pub fn id(&self) -> Option<SessionId> {
        self.state().stored.as_ref().map(|r| r.id)
    }

    /// The store key of the current token, once stored.
    pub fn key(&self) -> Option<SessionKey> {
        self.state().stored.as_ref().map(|r| r.key)
    }

    /// The client's current token, once stored. Never log it. Always `None`
    /// for client-side sessions, which have no token.
    pub fn token(&self) -> Option<SessionToken> {
        self.state().token.clone()
    }

    /// Whether the session is not (or no longer) in the store.
    pub fn is_new(&self) -> bool {
        self.state().stored.is_none()
    }

    /// The principal, as this request sees it.
    pub fn user(&self) -> Option<String> {
        self.state().current().user.clone()
    }

    /// When the session was created, once stored.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.state().stored.as_ref().map(|r| r.created_at)
    }

    /// The stored deadline, once stored.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.state().stored.as_ref().map(|r| r.expires_at)
    }

    /// Whether this session lives in its cookie (a client-side manager)
    /// rather than in a store.
    pub fn is_client_side(&self) -> bool {
        self.inner.cookie.is_some()
    }

    /// When the session ends however active it is, once stored: its creation
    /// plus the absolute timeout (for client-side sessions, never later than
    /// the deadline sealed at creation).
    pub fn absolute_deadline(&self) -> Option<Timestamp> {
        let st = self.state();
        let record = st.stored.as_ref()?;
        let configured = absolute_deadline(self.inner.manager.config(), record.created_at);
        Some(match &self.inner.cookie {
            Some(_) if st.cookie.absolute_at > Timestamp::EPOCH => {
                configured.min(st.cookie.absolute_at)
            }
            _ => configured,
        })
    }

    /// This session as an "active sessions" page shows it, once stored (as
    /// of its last load or commit). Works for client-side sessions too, where
    /// [`SessionManager::list_user`] cannot.
    pub fn info(&self) -> Option<SessionInfo> {
        let record = self.state().stored.clone()?;
        Some(self.inner.manager.info(&record))
    }

    /// Reads a value; `Ok(None)` when absent,
    /// [`Error::Decode`] when it does not deserialize as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let st = self.state();
        st.current()
            .payload
            .values
            .get(key)
            .map(|v| serde_json::from_str(v).map_err(|e| Error::decode_with("session value", e)))
            .transpose()
    }

    /// Stores a value under `key`; [`Error::InvalidInput`] if it does not
    /// serialize.
    pub fn insert<T: Serialize + ?Sized>(&self, key: impl AsRef<str>, value: &T) -> Result<()> {
        let json = to_json(value)?;
        self.push(Op::Set(Arc::from(key.as_ref()), json))
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        let had = self.state().current().payload.values.contains_key(key);
        if had {
            // Removing never fails to apply.
            let _ = self.push(Op::Remove(key.to_owned()));
        }
        had
    }

    /// Removes every value (the principal and metadata stay).
    pub fn clear(&self) {
        let _ = self.push(Op::Clear);
    }

    /// Records a metadata entry (user agent, …) shown by
    /// [`SessionManager::list_user`](crate::SessionManager::list_user).
    pub fn set_meta(&self, key: impl Into<String>, value: impl Into<String>) {
        let _ = self.push(Op::Meta(key.into(), value.into()));
    }

    /// A metadata entry.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.state().current().payload.meta.get(key).cloned()
    }

    /// "Remember me": `true` asks for a persistent token (a cookie with
    /// `Max-Age`, capped at the absolute timeout); `false` for one that ends with
    /// the browser. Once committed, the token is sent again with its new
    /// lifetime.
    pub fn set_remember(&self, remember: bool) {
        let _ = self.push(Op::Remember(remember));
    }

    /// Whether the session asks to be remembered.
    pub fn remember(&self) -> bool {
        self.state().current().payload.remember
    }

    /// Logs `user` in. The token is always rotated at commit (session
    /// fixation defence). What happens to the session depends on who was
    /// logged in before:
    ///
    /// - **Nobody** (an anonymous session): the session keeps its id, values
    ///   and metadata (a basket filled before signing in survives it) and
    ///   gets the principal.
    /// - **The same user** (re-authentication, a step-up): the same; only the
    ///   token changes.
    /// - **Another user**: the old session ends (it is deleted at commit, like
    ///   [`logout`](Self::logout)) and a fresh one starts for `user`, with a
    ///   new id, a new token and nothing carried over: no values, no
    ///   metadata, and no changes this request made before the call. Set
    ///   request metadata (a user agent, …) after `login`.
    ///
    /// [`Error::InvalidInput`] if `user` breaks the user-name rule
    /// ([`check_user_name`](crate::check_user_name): 1 to 1024 bytes, no NUL);
    /// then nothing changes.
    pub fn login(&self, user: impl Into<String>) -> Result<()> {
        let user = user.into();
        check_user_name(&user)?;
        let switching = self
            .state()
            .current()
            .user
            .as_ref()
            .is_some_and(|current| *current != user);
        if switching {
            self.logout();
        }
        self.push(Op::User(Some(user)))?;
        self.state().rotate = true;
        Ok(())
    }

    /// Ends the session: at commit it is deleted from the store and the client
    /// is told to forget its token. Changes made after this start a new session.
    pub fn logout(&self) {
        let mut st = self.state();
        st.destroy = true;
        st.epoch += 1;
        st.ops.clear();
        st.base = Some(View::default());
        st.view = None;
        st.rotate = false;
        st.touch_due = false;
    }

    /// Rotates the token at commit, keeping data and id (call it on any
    /// privilege change).
    pub fn rotate(&self) {
        self.state().rotate = true;
    }

    /// What the transport must tell the client, after everything committed so far.
    pub fn token_action(&self) -> TokenAction {
        self.state().action.clone()
    }

    /// Read-modify-write of one value, committed at once: `f` gets the current
    /// value and returns the next. On a version conflict `f` runs again on
    /// the newer stored value, so N concurrent increments end at N. Returns the
    /// value that was stored. Other pending changes are committed with it.
    pub async fn modify<T, F>(&self, key: impl AsRef<str>, mut f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send + 'static,
    {
        let key: Arc<str> = Arc::from(key.as_ref());
        let modifier: Modifier = Box::new(move |current: Option<&str>| {
            let current = current
                .map(|v| {
                    serde_json::from_str::<T>(v).map_err(|e| Error::decode_with("session value", e))
                })
                .transpose()?;
            to_json(&f(current))
        });
        self.push(Op::Modify(key.clone(), modifier))?;
        if let Err(e) = self.commit().await {
            // The caller is told it failed, so it must not happen later: a
            // retried commit (the layer's) would otherwise apply it after all,
            // possibly twice if the failed write did reach the store.
            let mut st = self.state();
            st.ops
                .retain(|op| !matches!(op, Op::Modify(k, _) if *k == key));
            let _ = st.refresh_view(self.inner.manager.data_keys());
            return Err(e);
        }
        self.get(&key)?.ok_or(Error::NotFound)
    }

    /// Writes this request's changes (or logout, rotation, idle extension) to
    /// the store and says what the client must be told.
    ///
    /// Nothing is written for a session that was never changed. On a version
    /// conflict the changes are re-applied on top of the newer version, up to
    /// the configured number of attempts, then [`Error::Conflict`]. If the
    /// session was deleted or revoked meanwhile, its pending writes are dropped
    /// (a revoked session never comes back) and the result is
    /// [`Error::NotFound`], with [`TokenAction::Clear`] recorded. Other errors
    /// leave the changes pending, so a later commit can retry them.
    pub async fn commit(&self) -> Result<TokenAction> {
        // Uncontended (the usual case), taking the gate needs no future.
        let _gate = match self.inner.gate.try_lock() {
            Ok(gate) => gate,
            Err(_) => self.inner.gate.lock().await,
        };
        if let Some(name) = &self.inner.cookie {
            // Boxed: inline, the client-side commit (sealing, the revocation
            // list) would make every server-side commit's future five times
            // larger, and with it every request's future.
            return Box::pin(self.commit_sealed(name)).await;
        }
        let manager = &self.inner.manager;
        let store = manager.store();
        let config = manager.config();

        let destroy = {
            let st = self.state();
            st.destroy.then(|| st.stored.as_ref().map(|r| r.key))
        };
        if let Some(key) = destroy {
            if let Some(key) = key {
                store.delete(&key).await?;
            }
            let mut st = self.state();
            st.destroy = false;
            st.token = None;
            st.stored = None;
            st.action = TokenAction::Clear;
        }

        for _ in 0..config.max_attempts() {
            let (plan, written) = self.plan()?;
            let outcome = match &plan {
                Plan::Nothing => return Ok(self.token_action()),
                Plan::Create(record, ..) => store.create(record).await,
                Plan::Update(record) => store.update(record, record.version - 1).await,
                Plan::Rotate(old, record, ..) => {
                    store.rotate(old, record, record.version - 1).await
                }
                Plan::Touch(key, to) => store.touch(key, *to).await,
            };
            match outcome {
                Ok(()) => {
                    let user = self.finish(plan, written)?;
                    if let (true, Some(user)) = (written.login, user) {
                        // Best effort: the login itself has landed and its token
                        // must reach the client. A cap left unenforced now is
                        // enforced at the user's next login.
                        // (Boxed: a rare path that would otherwise enlarge
                        // every commit's future.)
                        let _ = Box::pin(self.enforce_cap(&user)).await;
                    }
                    return Ok(self.token_action());
                }
                // A fresh token collided (never, in practice): plan again.
                Err(Error::AlreadyExists) => continue,
                Err(Error::Conflict) => Box::pin(self.reload()).await?,
                Err(Error::NotFound) => {
                    let had_writes = !matches!(plan, Plan::Touch(..));
                    self.state().forget();
                    return if had_writes {
                        Err(Error::NotFound)
                    } else {
                        Ok(self.token_action())
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }

    /// [`commit`](Self::commit) of a client-side session: seals the session
    /// into cookies for the cookie `name`, and records the credentials that
    /// logout, login and rotation end in the revocation list, if there is
    /// one. The cookies are built first: a session too large for them is
    /// [`Error::TooLarge`] before anything is recorded, and the client keeps
    /// the cookie it has.
    async fn commit_sealed(&self, name: &str) -> Result<TokenAction> {
        loop {
            // A logout plans from nothing; the ended record comes back if the
            // commit fails, so that a retry still ends it.
            let (epoch, destroyed) = {
                let mut st = self.state();
                let destroyed = if st.destroy { st.stored.take() } else { None };
                (st.epoch, destroyed)
            };
            let outcome = self.seal_and_revoke(name, destroyed.as_ref()).await;
            let mut st = self.state();
            match outcome {
                // `logout` ran while this commit was in flight: end what it
                // has just issued too, then tell the client to forget it.
                Ok(_) if st.epoch != epoch => continue,
                Ok(Some(action)) => {
                    st.destroy = false;
                    st.action = action;
                }
                Ok(None) => {
                    if st.destroy {
                        st.destroy = false;
                        st.action = TokenAction::Clear;
                    }
                }
                Err(e) => {
                    if st.stored.is_none() && st.destroy {
                        st.stored = destroyed;
                    }
                    return Err(e);
                }
            }
            return Ok(st.action.clone());
        }
    }

    /// The cookies for what this request changed, and the revocations its
    /// logout or rotation needs; `None` when no cookie is to be set.
    /// [`Error::NotFound`] if a rotation finds its old credential already
    /// refused (the session was ended while this request ran): the new
    /// credential is not handed out.
    async fn seal_and_revoke(
        &self,
        name: &str,
        destroyed: Option<&Record>,
    ) -> Result<Option<TokenAction>> {
        let manager = &self.inner.manager;
        let config = manager.config();
        let client = manager
            .client()
            .expect("a sealed session has a client-side manager");
        let (plan, written) = self.plan()?;
        let old = self.state().cookie.clone();
        let mut cookie = old.clone();
        match &plan {
            Plan::Create(..) => {
                cookie = CookieState {
                    issued_at: written.at,
                    absolute_at: absolute_deadline(config, written.at),
                    ..CookieState::default()
                };
            }
            Plan::Rotate(..) => cookie.issued_at = written.at.max(old.issue_after),
            _ => {}
        }
        let cookies = match &plan {
            Plan::Nothing => None,
            Plan::Create(record, _) | Plan::Update(record) | Plan::Rotate(_, record, _) => {
                let value = client::seal(manager.cookie_keys(), name, record, &cookie)?;
                Some(client.split(name, &value)?)
            }
            Plan::Touch(..) => unreachable!("client-side touches are planned as updates"),
        };
        if let Some(list) = manager.revocations() {
            let now = manager.now();
            // The session "log out everywhere" kept is not refused by it.
            let issued = |c: &CookieState| if c.kept() { NEVER_REFUSED } else { c.issued_at };
            let mut known = old.list_record.clone();
            if let Some(r) = destroyed {
                let until = old.absolute_at;
                let revoked = list
                    .revoke_key(
                        r.user.as_deref(),
                        &r.key,
                        issued(&old),
                        until,
                        now,
                        known.take(),
                    )
                    .await?;
                known = revoked.record.map(Some);
            }
            if let Plan::Rotate(key, ..) = &plan {
                let user = self.state().stored.as_ref().and_then(|r| r.user.clone());
                let revoked = list
                    .revoke_key(
                        user.as_deref(),
                        key,
                        issued(&old),
                        old.absolute_at,
                        now,
                        known.take(),
                    )
                    .await?;
                if revoked.already {
                    // Ended meanwhile (logout elsewhere, "log out
                    // everywhere"): as a store would answer a rotation of a
                    // deleted session.
                    self.state().forget();
                    return Err(Error::NotFound);
                }
                known = revoked.record.map(Some);
            }
            if !matches!(plan, Plan::Create(..)) {
                cookie.list_record = known;
            }
        }
        let Some(cookies) = cookies else {
            self.state().cookie = cookie;
            return Ok(None);
        };
        self.finish(plan, written)?;
        let mut st = self.state();
        st.token = None;
        cookie.issue_after = Timestamp::EPOCH;
        st.cookie = cookie;
        let remember = st.base.as_ref().is_some_and(|b| b.payload.remember);
        let max_age = match (&st.stored, remember) {
            (Some(_), true) => Some(st.cookie.absolute_at.since(manager.now())),
            _ => None,
        };
        Ok(Some(TokenAction::IssueCookies { cookies, max_age }))
    }

    /// The revocation list's record of this session's user as read in this
    /// request, if it was.
    pub(crate) fn list_record(&self) -> Option<Option<Record>> {
        self.state().cookie.list_record.clone()
    }

    /// "Log out everywhere" refused every cookie of this session's user
    /// issued up to `not_before` and wrote `written`: this session keeps
    /// going, with a new credential issued after that, at its commit.
    pub(crate) fn keep_after(&self, not_before: Timestamp, written: Record) {
        let mut st = self.state();
        st.cookie.issue_after = not_before.saturating_add(std::time::Duration::from_millis(1));
        st.cookie.list_record = Some(Some(written));
        st.rotate = true;
    }

    /// Decides the one store call this commit needs, from the current state.
    fn plan(&self) -> Result<(Plan, Written)> {
        let manager = &self.inner.manager;
        let config = manager.config();
        let mut guard = self.state();
        let st = &mut *guard;
        let n = st.ops.len();
        // The clock is read only for a write that stores data.
        // A client-side idle extension re-issues the whole cookie: a write.
        let sealed_touch = self.inner.cookie.is_some() && st.touch_due;
        let writes_data = n > 0 || ((st.rotate || sealed_touch) && st.stored.is_some());
        let now = if writes_data {
            manager.now()
        } else {
            Timestamp::EPOCH
        };
        let login = st.ops.iter().any(|op| matches!(op, Op::User(Some(_))));
        let remember = st.ops.iter().any(|op| matches!(op, Op::Remember(_)));
        // Encoded straight from the current view: no copy of the data is
        // made unless other changes arrive while the write is in flight.
        let view = st.current();
        let plan = match &st.stored {
            None if n == 0 => Plan::Nothing,
            None => {
                let (token, id) = SessionId::generate_with_token();
                let key = token.key();
                let record = Record {
                    key,
                    id,
                    user: view.user.clone(),
                    created_at: now,
                    expires_at: deadline(config, now, now),
                    version: 1,
                    data: encode(
                        &view.payload,
                        now,
                        Binding::new(&key, &id, view.user.as_deref(), now),
                        manager.data_keys(),
                    )?,
                };
                Plan::Create(record, token)
            }
            Some(stored) if st.rotate || n > 0 || sealed_touch => {
                // The new key is chosen first: the seal binds it.
                let token = st.rotate.then(SessionToken::generate);
                let key = token.as_ref().map_or(stored.key, SessionToken::key);
                let record = Record {
                    key,
                    id: stored.id,
                    user: view.user.clone(),
                    created_at: stored.created_at,
                    expires_at: deadline(config, stored.created_at, now),
                    version: stored.version + 1,
                    data: encode(
                        &view.payload,
                        now,
                        Binding::new(&key, &stored.id, view.user.as_deref(), stored.created_at),
                        manager.data_keys(),
                    )?,
                };
                match token {
                    Some(token) => Plan::Rotate(stored.key, record, token),
                    None => Plan::Update(record),
                }
            }
            Some(stored) if st.touch_due => {
                // The deadline is computed now, at commit, not at load: a
                // request that loaded early and commits late must not plan
                // an earlier deadline than a later request already wrote
                // (stores also never move a touched deadline earlier).
                let to = deadline(config, stored.created_at, manager.now());
                if to > stored.expires_at {
                    Plan::Touch(stored.key, to)
                } else {
                    Plan::Nothing
                }
            }
            Some(_) => Plan::Nothing,
        };
        let written = Written {
            ops: n,
            login,
            remember,
            epoch: st.epoch,
            at: now,
        };
        Ok((plan, written))
    }

    /// Records a successful store call; returns the committed principal.
    fn finish(&self, plan: Plan, written: Written) -> Result<Option<String>> {
        let manager = &self.inner.manager;
        let config = manager.config();
        let mut st = self.state();
        let max_age = |st: &State, created_at: Timestamp| {
            st.base
                .as_ref()
                .is_some_and(|base| base.payload.remember)
                .then(|| absolute_deadline(config, created_at).since(manager.now()))
        };
        match plan {
            Plan::Nothing => {}
            Plan::Touch(_, to) => {
                if let Some(stored) = st.stored.as_mut() {
                    stored.expires_at = stored.expires_at.max(to);
                }
                st.touch_due = false;
            }
            Plan::Create(record, token) | Plan::Rotate(_, record, token) => {
                let created_at = record.created_at;
                self.settle(&mut st, record, written)?;
                st.action = TokenAction::Issue {
                    token: token.clone(),
                    max_age: max_age(&st, created_at),
                };
                st.token = Some(token);
                st.rotate = false;
            }
            Plan::Update(record) => {
                let created_at = record.created_at;
                self.settle(&mut st, record, written)?;
                // "Remember me" was set: the cookie's lifetime follows it
                // (unless a logout meanwhile has ended the session).
                if written.remember && st.epoch == written.epoch {
                    if let Some(token) = st.token.clone() {
                        st.action = TokenAction::Issue {
                            token,
                            max_age: max_age(&st, created_at),
                        };
                    }
                }
            }
        }
        Ok(st.base.as_ref().and_then(|base| base.user.clone()))
    }

    /// Makes `record`, just written from the first `committed_ops` changes,
    /// the new base.
    fn settle(&self, st: &mut State, record: Record, written: Written) -> Result<()> {
        let Written {
            ops: committed_ops,
            epoch,
            at: written_at,
            ..
        } = written;
        if st.epoch != epoch {
            // `logout` ran while this commit was in flight and threw the
            // pending changes away; only remember what is stored, so the
            // next commit deletes the right key.
            st.stored = Some(record);
            return Ok(());
        }
        let keys = self.inner.manager.data_keys();
        if st.ops.len() == committed_ops {
            // The usual case: the current view is exactly what was written.
            if let Some(view) = st.view.take() {
                st.base = Some(view);
            }
            st.base(keys)?.payload.last_seen = written_at;
            st.ops.clear();
        } else {
            // More changes arrived while the write was in flight: what was
            // written is exactly the record's data, so read it back.
            let payload = decode(&record.data, Binding::of(&record), keys)?;
            // Never more than there are: a failed `modify` may have taken its
            // own change back meanwhile.
            let committed = committed_ops.min(st.ops.len());
            st.ops.drain(..committed);
            st.base = Some(View {
                payload,
                user: record.user.clone(),
            });
        }
        st.stored = Some(record);
        st.touch_due = false;
        st.refresh_view(keys)
    }

    /// After a conflict: read the newer version and re-apply pending changes.
    async fn reload(&self) -> Result<()> {
        let manager = &self.inner.manager;
        let (key, epoch) = {
            let st = self.state();
            (st.stored.as_ref().map(|r| r.key), st.epoch)
        };
        let Some(key) = key else {
            return Ok(());
        };
        let Some(fresh) = manager.store().load(&key).await? else {
            // Deleted meanwhile; the next attempt's update answers NotFound.
            return Ok(());
        };
        let payload = decode(&fresh.data, Binding::of(&fresh), manager.data_keys())?;
        let mut st = self.state();
        if st.epoch != epoch {
            // `logout` ran meanwhile: the logged-out data must not come
            // back into view; the next attempt deletes the session.
            return Ok(());
        }
        st.base = Some(View {
            payload,
            user: fresh.user.clone(),
        });
        st.stored = Some(fresh);
        st.refresh_view(manager.data_keys())
    }

    /// Keeps the user's `cap` most recently active sessions and ends the
    /// rest, after this session's login has landed.
    ///
    /// Every login ranks the sessions it sees in one total order
    /// ([`CapRank`]: last activity, then id), this one's included, and ends
    /// those outside the first `cap`. A session in the first `cap` of all the
    /// user's sessions is also in the first `cap` of any part of them, so no
    /// login ever ends it, whatever the interleaving; and the last login to
    /// look sees every login that landed before it, so the excess is gone
    /// once all concurrent logins have finished. A login that is not racing
    /// another is the most recent activity of its user, so its own session is
    /// kept; of logins racing within the same instant, the order decides.
    /// Sessions are ended by id, so one that rotates meanwhile is still found.
    async fn enforce_cap(&self, user: &str) -> Result<()> {
        let manager = &self.inner.manager;
        let Some(cap) = manager.config().max_per_user() else {
            return Ok(());
        };
        let mut ranked: Vec<(CapRank, SessionId)> = manager
            .live_records(user)
            .await?
            .iter()
            .map(|r| (cap_rank(manager, r), r.id))
            .collect();
        if ranked.len() <= cap {
            return Ok(());
        }
        ranked.sort_unstable();
        for (_, id) in ranked.into_iter().skip(cap) {
            manager.store().delete_id(user, id).await?;
        }
        Ok(())
    }
}

/// Where `record` stands in the per-user cap's order.
fn cap_rank(manager: &SessionManager, record: &Record) -> CapRank {
    std::cmp::Reverse((manager.info(record).last_active, record.id))
}
