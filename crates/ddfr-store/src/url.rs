//! Database URLs: which backend a URL picks, and a `Debug` that never prints a password.

use std::fmt;
use std::sync::Arc;

use crate::{PersonStore, SqliteStore, StoreError, StoreOptions};

/// The backend a database URL selects, by its scheme. Every variant exists in every build;
/// opening one that was not compiled in is an error naming the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `sqlite:PATH`, `sqlite://PATH` or `sqlite::memory:`.
    Sqlite,
    /// `postgres://...` or `postgresql://...`.
    Postgres,
}

/// A database URL. `Debug` and `Display` redact any password, so the URL can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// What a redacted password reads as.
const REDACTED: &str = "***";

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included; pass it to the driver, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The backend the scheme selects.
    pub fn kind(&self) -> Result<StoreKind, StoreError> {
        let url = self.0.as_str();
        if url.starts_with("sqlite:") {
            Ok(StoreKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StoreKind::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl { url: self.redacted() })
        }
    }

    /// The URL with the password of `user:password@` and any `password=` query value hidden.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
                None => format!("{user_info}@{host}"),
            },
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                            format!("{key}={REDACTED}")
                        }
                        _ => pair.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_owned(),
        };
        format!("{scheme}://{authority}{tail}")
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    /// Any text is accepted here; [`DatabaseUrl::kind`] checks the scheme.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(url))
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Opens the store a URL names: migrations are applied and, for SQLite, the file is checked
/// with `PRAGMA quick_check` first.
pub async fn open_store(url: &DatabaseUrl) -> Result<Arc<dyn PersonStore>, StoreError> {
    open_store_with(url, &StoreOptions::default()).await
}

/// [`open_store`] with options (encryption at rest, pre-migration copies).
pub async fn open_store_with(
    url: &DatabaseUrl,
    options: &StoreOptions,
) -> Result<Arc<dyn PersonStore>, StoreError> {
    match url.kind()? {
        StoreKind::Sqlite => {
            Ok(Arc::new(SqliteStore::open_with_options(url.expose(), options).await?))
        }
        #[cfg(feature = "postgres")]
        StoreKind::Postgres => {
            Ok(Arc::new(crate::PgStore::connect_with_options(url, options).await?))
        }
        #[cfg(not(feature = "postgres"))]
        StoreKind::Postgres => {
            Err(StoreError::BackendNotCompiled { backend: "PostgreSQL", feature: "postgres" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::new(
            "postgres://ddfr:s3cret@db.local:5432/ddfr?sslmode=require&password=x2",
        );
        let shown = format!("{url:?} {url}");
        assert!(!shown.contains("s3cret") && !shown.contains("x2"), "{shown}");
        assert!(
            shown.contains("postgres://ddfr:***@db.local:5432/ddfr?sslmode=require&password=***")
        );
        assert_eq!(DatabaseUrl::new("sqlite:/data/ddfr.db").to_string(), "sqlite:/data/ddfr.db");
        assert_eq!(DatabaseUrl::new("postgres://db/ddfr").redacted(), "postgres://db/ddfr");
    }

    #[test]
    fn scheme_picks_the_backend() {
        assert_eq!(DatabaseUrl::new("sqlite:x.db").kind().unwrap(), StoreKind::Sqlite);
        assert_eq!(DatabaseUrl::new("postgresql://h/d").kind().unwrap(), StoreKind::Postgres);
        let error = DatabaseUrl::new("mysql://u:pw@h/d").kind().unwrap_err();
        assert!(!error.to_string().contains("pw"));
    }
}
