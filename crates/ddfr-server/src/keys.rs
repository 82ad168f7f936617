//! API keys: the admin creates named keys with a role (`admin`, `operator`, `recognizer`) and
//! an optional expiry, lists them and revokes them (`/api/keys`, admin only, audited).
//!
//! A key's secret is `ddfr_` followed by 64 hex digits (32 random bytes from the thread's
//! CSPRNG, seeded by the OS). It is shown once, in the `POST /api/keys` reply; the store keeps
//! only its SHA-256. [`KeyRegistry`] holds every key (without secrets) in memory, loaded from
//! the store when it is attached and updated after every change, so authenticating a key
//! costs one SHA-256 and a constant-time comparison with every stored hash, and no database
//! query.
//!
//! Every credential is a [`Principal`] (each key, each environment token): `/ws` connections
//! are capped per principal ([`PrincipalSlot`]), and a `/ws` connection opened with a key is
//! closed with code 1008 as soon as that key is revoked or expires ([`KeyWatch`]). Browser
//! sessions made from a key hold the key's secret, so they stop working with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ddfr_protocol::{CreatedKey, FieldError, KeyList, KeyView, NewKey, Timestamp};
use ddfr_store::{ApiKey, AuditResult, KeyRole, MAX_KEY_NAME_CHARS, NewApiKey, PersonStore};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::audit::{Actor, AuditAction, Target, record};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::{AppState, now_timestamp};

/// What every key's secret starts with (so a leaked one is recognisable in logs and scanners).
pub const SECRET_PREFIX: &str = "ddfr_";

/// Longest expiry `expires_in_days` accepts.
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// Who authenticated: each key and each environment token is a principal of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// No token is configured (loopback only): nobody is told apart.
    Loopback,
    /// `DDFR_API_TOKEN`.
    AdminToken,
    /// `DDFR_RECOGNIZE_TOKEN`.
    RecognizeToken,
    /// The API key with this id.
    Key(i64),
}

impl Principal {
    /// For logs and audit details: `loopback`, `admin_token`, `recognize_token`, `key:<id>`.
    pub fn label(self) -> String {
        match self {
            Principal::Loopback => "loopback".to_owned(),
            Principal::AdminToken => "admin_token".to_owned(),
            Principal::RecognizeToken => "recognize_token".to_owned(),
            Principal::Key(id) => format!("key:{id}"),
        }
    }
}

/// The SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh secret: [`SECRET_PREFIX`] and 32 random bytes in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + 64);
    secret.push_str(SECRET_PREFIX);
    for byte in bytes {
        secret.push_str(&format!("{byte:02x}"));
    }
    secret
}

/// The API keys in memory, the store they live in, and the `/ws` connections per principal.
#[derive(Debug)]
pub struct KeyRegistry {
    store: OnceLock<Arc<dyn PersonStore>>,
    keys: RwLock<Vec<ApiKey>>,
    changed: watch::Sender<u64>,
    connections: Mutex<HashMap<Principal, usize>>,
}

impl Default for KeyRegistry {
    fn default() -> Self {
        Self {
            store: OnceLock::new(),
            keys: RwLock::new(Vec::new()),
            changed: watch::channel(0).0,
            connections: Mutex::new(HashMap::new()),
        }
    }
}

impl KeyRegistry {
    /// Attaches the store and loads its keys; until then no key authenticates and `/api/keys`
    /// answers 503. A second call is ignored.
    pub async fn attach(&self, store: Arc<dyn PersonStore>) -> Result<(), ddfr_store::StoreError> {
        let keys = store.keys().await?;
        if self.store.set(store).is_ok() {
            self.replace(keys);
        }
        Ok(())
    }

    fn store(&self) -> Result<&Arc<dyn PersonStore>, ApiError> {
        self.store.get().ok_or_else(ApiError::not_ready)
    }

    fn replace(&self, keys: Vec<ApiKey>) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        self.changed.send_modify(|generation| *generation += 1);
    }

    async fn reload(&self) -> Result<(), ApiError> {
        let keys = self.store()?.keys().await?;
        self.replace(keys);
        Ok(())
    }

    /// The key whose secret is `secret`, valid or not. The presented secret's hash is compared
    /// with every stored hash in constant time, without stopping at a match.
    pub fn find(&self, secret: &str) -> Option<ApiKey> {
        let hash = hash_secret(secret);
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let mut found = None;
        for key in keys.iter() {
            if bool::from(key.secret_sha256.ct_eq(&hash)) {
                found = Some(key.clone());
            }
        }
        found
    }

    /// Whether the key with `id` authenticates at `at` (known, not revoked, not expired).
    pub fn is_valid(&self, id: i64, at: Timestamp) -> bool {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.iter().any(|key| key.id == id && key.is_valid_at(at))
    }

    fn expires_at(&self, id: i64) -> Option<Timestamp> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.iter().find(|key| key.id == id).and_then(|key| key.expires_at)
    }

    /// `/ws` connections open per principal.
    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<Principal, usize>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `/ws` connections `principal` has open.
    pub fn open_connections(&self, principal: Principal) -> usize {
        self.connections().get(&principal).copied().unwrap_or(0)
    }
}

/// The role an API key has in the server's terms.
pub fn role_of_key(role: KeyRole) -> crate::auth::Role {
    match role {
        KeyRole::Admin => crate::auth::Role::Admin,
        KeyRole::Operator => crate::auth::Role::Operator,
        KeyRole::Recognizer => crate::auth::Role::Recognize,
    }
}

/// A `/ws` connection counted against its principal's cap, given back on drop.
#[derive(Debug)]
pub struct PrincipalSlot {
    state: AppState,
    principal: Principal,
}

impl PrincipalSlot {
    /// Takes one of `principal`'s at most `max` connections; `None` when all are taken. The
    /// loopback principal (no token configured) is not capped.
    pub fn take(state: &AppState, principal: Principal, max: usize) -> Option<Self> {
        let mut connections = state.keys().connections();
        let open = connections.entry(principal).or_insert(0);
        if principal != Principal::Loopback && *open >= max {
            return None;
        }
        *open += 1;
        drop(connections);
        Some(Self { state: state.clone(), principal })
    }
}

impl Drop for PrincipalSlot {
    fn drop(&mut self) {
        let mut connections = self.state.keys().connections();
        if let Some(open) = connections.get_mut(&self.principal) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                connections.remove(&self.principal);
            }
        }
    }
}

/// Watches the key a `/ws` connection authenticated with: [`KeyWatch::ended`] resolves when
/// the key is revoked or expires; never for other principals.
#[derive(Debug)]
pub struct KeyWatch {
    state: AppState,
    key: Option<i64>,
    changed: watch::Receiver<u64>,
}

impl KeyWatch {
    /// A watch on `principal`'s key, if it is one.
    pub fn new(state: &AppState, principal: Option<Principal>) -> Self {
        let key = match principal {
            Some(Principal::Key(id)) => Some(id),
            _ => None,
        };
        Self { state: state.clone(), key, changed: state.keys().changed.subscribe() }
    }

    /// Resolves once the key no longer authenticates (revoked, expired, or gone).
    pub async fn ended(&mut self) {
        let Some(id) = self.key else { return std::future::pending().await };
        loop {
            let registry = self.state.keys();
            let now = now_timestamp();
            if !registry.is_valid(id, now) {
                return;
            }
            let until_expiry = registry.expires_at(id).map(|end| {
                Duration::from_millis(
                    u64::try_from(end.unix_millis() - now.unix_millis()).unwrap_or(0),
                )
            });
            let expiry = async {
                match until_expiry {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = self.changed.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
                () = expiry => {}
            }
        }
    }
}

/// `active`, `expired` or `revoked` at `now`.
fn status(key: &ApiKey, now: Timestamp) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.is_valid_at(now) {
        "active"
    } else {
        "expired"
    }
}

/// A key as the API shows it at `now` (never its secret or hash).
pub fn key_view(key: &ApiKey, now: Timestamp) -> KeyView {
    KeyView {
        id: key.id,
        name: key.name.clone(),
        role: key.role.as_str().to_owned(),
        created_at: key.created_at,
        expires_at: key.expires_at,
        revoked_at: key.revoked_at,
        status: status(key, now).to_owned(),
    }
}

/// The checked fields of a `POST /api/keys` body (name trimmed, role, expiry), or every error
/// at once.
pub fn validate(
    body: &NewKey,
    now: Timestamp,
) -> Result<(String, KeyRole, Option<Timestamp>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = body.name.trim().to_owned();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_KEY_NAME_CHARS {
        errors
            .push(FieldError::new("name", format!("must be 1 to {MAX_KEY_NAME_CHARS} characters")));
    }
    let role = KeyRole::parse(&body.role);
    if role.is_none() {
        errors.push(FieldError::new("role", "must be admin, operator or recognizer"));
    }
    let expires_at = match (body.expires_at, body.expires_in_days) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "expires_at",
                "give expires_at or expires_in_days, not both",
            ));
            None
        }
        (Some(at), None) => {
            if at <= now {
                errors.push(FieldError::new("expires_at", "must be in the future"));
            }
            Some(at)
        }
        (None, Some(days)) => {
            if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
                errors.push(FieldError::new(
                    "expires_in_days",
                    format!("must be 1 to {MAX_EXPIRY_DAYS}"),
                ));
            }
            Some(Timestamp::from_unix_millis(now.unix_millis() + i64::from(days) * 86_400_000))
        }
        (None, None) => None,
    };
    match role {
        Some(role) if errors.is_empty() => Ok((name, role, expires_at)),
        _ => Err(errors),
    }
}

/// `POST /api/keys`: creates a key and shows its secret, once. Admin only; audited.
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey, description = "The key and its secret, shown once"),
        (status = 422, body = ddfr_protocol::ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let registry = state.keys();
    let store = registry.store()?;
    let now = now_timestamp();
    let (name, role, expires_at) = validate(&body, now).map_err(ApiError::validation)?;
    let secret = new_secret();
    let new = NewApiKey { name, role, secret_sha256: hash_secret(&secret), expires_at };
    let key = store.create_key(&new).await?;
    registry.reload().await?;
    tracing::info!(key = key.id, role = role.as_str(), "api key created");
    let target = Some(Target { kind: "key", id: key.id, person: None });
    let detail = Some(format!("role={}", role.as_str()));
    record(store.as_ref(), actor, AuditAction::KeyCreate, target, AuditResult::Success, detail)
        .await;
    Ok((StatusCode::CREATED, Json(CreatedKey { key: key_view(&key, now), secret })))
}

/// `GET /api/keys`: every key, never a secret. Admin only.
#[utoipa::path(get, path = "/api/keys", tag = "keys", responses((status = 200, body = KeyList)))]
pub async fn list_keys(State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    let keys = state.keys().store()?.keys().await?;
    let now = now_timestamp();
    Ok(Json(KeyList { items: keys.iter().map(|key| key_view(key, now)).collect() }))
}

/// `DELETE /api/keys/{id}`: revokes the key for good: it stops authenticating at once, its
/// `/ws` connections are closed with 1008 and browser sessions made from it stop working.
/// Revoking a revoked key is a no-op (204). Admin only; audited.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys", params(("id" = i64, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, body = ddfr_protocol::ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let registry = state.keys();
    let store = registry.store()?;
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, "key_not_found", "no API key with this id");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let Some(key) = store.revoke_key(id).await? else {
        return Err(not_found());
    };
    registry.reload().await?;
    tracing::info!(key = key.id, "api key revoked");
    let target = Some(Target { kind: "key", id: key.id, person: None });
    record(store.as_ref(), actor, AuditAction::KeyRevoke, target, AuditResult::Success, None).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_hex_with_the_prefix() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 64, "{a}");
        assert!(a[SECRET_PREFIX.len()..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        let now = Timestamp::from_unix_millis(1_000_000);
        let body = |name: &str, role: &str, at: Option<i64>, days: Option<u32>| NewKey {
            name: name.to_owned(),
            role: role.to_owned(),
            expires_at: at.map(Timestamp::from_unix_millis),
            expires_in_days: days,
        };
        let (name, role, at) = validate(&body(" door ", "recognizer", None, Some(2)), now).unwrap();
        assert_eq!((name.as_str(), role), ("door", KeyRole::Recognizer));
        assert_eq!(at, Some(Timestamp::from_unix_millis(1_000_000 + 2 * 86_400_000)));
        for bad in [
            body("", "admin", None, None),
            body("x", "root", None, None),
            body("x", "admin", Some(5), None),
            body("x", "admin", Some(2_000_000), Some(1)),
            body("x", "admin", None, Some(0)),
            body(&"x".repeat(101), "admin", None, None),
        ] {
            assert!(validate(&bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_registry_finds_keys_by_secret_and_knows_their_validity() {
        let registry = KeyRegistry::default();
        let key = |id, secret: &str, expires: Option<i64>, revoked: Option<i64>| ApiKey {
            id,
            name: format!("k{id}"),
            role: KeyRole::Operator,
            secret_sha256: hash_secret(secret),
            created_at: Timestamp::from_unix_millis(0),
            expires_at: expires.map(Timestamp::from_unix_millis),
            revoked_at: revoked.map(Timestamp::from_unix_millis),
        };
        registry.replace(vec![
            key(1, "a", None, None),
            key(2, "b", Some(10), None),
            key(3, "c", None, Some(1)),
        ]);
        assert_eq!(registry.find("b").map(|k| k.id), Some(2));
        assert!(registry.find("d").is_none());
        let at = Timestamp::from_unix_millis(5);
        assert!(registry.is_valid(1, at) && registry.is_valid(2, at) && !registry.is_valid(3, at));
        assert!(!registry.is_valid(2, Timestamp::from_unix_millis(10)));
        assert!(!registry.is_valid(4, at));
    }
}
