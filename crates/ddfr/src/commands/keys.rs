//! `ddfr keys create|list|revoke`: the API keys of a database, managed offline (the same
//! rules and JSON as `POST /api/keys`, `GET /api/keys` and `DELETE /api/keys/{id}`; every
//! change is audited with the actor `cli`).
//!
//! A running `ddfr serve` loads the keys at start and learns of changes through its REST API
//! only: a key created here works, and a key revoked here stops working, once the server
//! restarts. To revoke a key of a running server (closing its `/ws` connections at once), use
//! `DELETE /api/keys/{id}`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ddfr_protocol::{CreatedKey, KeyList, NewKey, Timestamp};
use ddfr_server::keys::{hash_secret, key_view, new_secret, validate};
use ddfr_store::{AuditResult, DatabaseUrl, NewApiKey, NewAuditEntry, PersonStore};

/// Options of `ddfr keys`.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
    /// The data dir of the service (as `ddfr serve --data-dir`).
    #[arg(long, env = "DDFR_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// The database URL (as `ddfr serve --database-url`); default: the SQLite file in the
    /// data dir.
    #[arg(long, env = "DDFR_DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// The key file of an encrypted database (as `ddfr serve --encryption-key-file`).
    #[arg(long, env = "DDFR_ENCRYPTION_KEY_FILE", global = true)]
    pub encryption_key_file: Option<PathBuf>,
}

/// What `ddfr keys` does.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysAction {
    /// Create a key and print it with its secret (shown this once; only its hash is stored).
    Create {
        /// A label for people, e.g. "front door camera".
        #[arg(long)]
        name: String,
        /// admin, operator or recognizer.
        #[arg(long)]
        role: String,
        /// Days until the key stops working (1 to 3650); default: never.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List every key (never a secret).
    List,
    /// Revoke a key for good.
    Revoke {
        /// The key's id (from `ddfr keys list`).
        id: i64,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn now() -> Timestamp {
    ddfr_server::state::now_timestamp()
}

/// Appends the audit entry of a change made here.
async fn audit(store: &dyn PersonStore, action: &str, id: i64, detail: Option<String>) {
    let entry = NewAuditEntry {
        actor: "cli".to_owned(),
        action: action.to_owned(),
        target_kind: Some("key".to_owned()),
        target_id: Some(id),
        person: None,
        result: AuditResult::Success,
        detail,
    };
    if let Err(error) = store.append_audit(&entry).await {
        tracing::error!(%error, action, "audit entry could not be written");
    }
}

/// Runs `ddfr keys`.
pub fn run(args: &KeysArgs) -> Result<()> {
    let url = match &args.database_url {
        Some(url) => DatabaseUrl::new(url.clone()),
        None => {
            let file = args.data_dir.join(ddfr_store::SQLITE_FILE_NAME);
            if !file.is_file() {
                bail!("no database at {} (set --data-dir or --database-url)", file.display());
            }
            DatabaseUrl::new(format!("sqlite:{}", file.display()))
        }
    };
    let options = crate::settings::store_options(args.encryption_key_file.as_deref())?;
    runtime()?.block_on(async {
        let store = ddfr_store::open_store_with(&url, &options)
            .await
            .map_err(crate::settings::explain_store_error)
            .with_context(|| format!("opening the database {}", url.redacted()))?;
        let result = act(store.as_ref(), &args.action).await;
        store.close().await;
        result
    })
}

async fn act(store: &dyn PersonStore, action: &KeysAction) -> Result<()> {
    match action {
        KeysAction::Create { name, role, expires_in_days } => {
            let body = NewKey {
                name: name.clone(),
                role: role.clone(),
                expires_at: None,
                expires_in_days: *expires_in_days,
            };
            let now = now();
            let (name, role, expires_at) = validate(&body, now).map_err(|errors| {
                let text: Vec<String> =
                    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                anyhow::anyhow!("invalid key: {}", text.join("; "))
            })?;
            let secret = new_secret();
            let new = NewApiKey { name, role, secret_sha256: hash_secret(&secret), expires_at };
            let key = store.create_key(&new).await.context("storing the key")?;
            audit(store, "key_create", key.id, Some(format!("role={}", role.as_str()))).await;
            crate::output::emit_json(&CreatedKey { key: key_view(&key, now), secret })
        }
        KeysAction::List => {
            let now = now();
            let keys = store.keys().await?;
            crate::output::emit_json(&KeyList {
                items: keys.iter().map(|key| key_view(key, now)).collect(),
            })
        }
        KeysAction::Revoke { id } => {
            let Some(key) = store.revoke_key(*id).await? else {
                bail!("no API key with id {id}");
            };
            audit(store, "key_revoke", key.id, None).await;
            crate::output::emit_json(&key_view(&key, now()))
        }
    }
}
