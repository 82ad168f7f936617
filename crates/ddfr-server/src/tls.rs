//! HTTPS and WSS served by ddfr itself: a certificate chain and its private key from PEM files
//! (rustls with the ring provider), and [`TlsListener`], which runs every client's TLS
//! handshake in a task of its own with a timeout, so a slow or failing client never holds up
//! the accept loop or anyone else.
//!
//! Everything is checked when [`TlsConfig::from_pem_files`] runs, before the server binds: an
//! unreadable file, a file without a certificate or key, or a key that does not belong to the
//! certificate is a [`TlsError`] and the server does not start.
//!
//! Renewal without a restart: [`TlsConfig::reload`] (called by `ddfr serve` on SIGHUP) reads the
//! same files again with the same checks and, only if they pass, serves the new certificate to
//! every new connection; open connections keep theirs, and a bad pair keeps the old one.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its TLS handshake before its connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most TLS handshakes in progress at once; further connections wait in the kernel's accept
/// queue until one finishes (bounds the memory a handshake flood can take).
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// Finished handshakes waiting for the HTTP server to take them.
const READY_QUEUE: usize = 64;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read.
    #[error("cannot read the TLS certificate {path}")]
    ReadCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The certificate file is not a PEM certificate chain.
    #[error("{path} is not a PEM certificate chain ({reason})")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key file cannot be read.
    #[error("cannot read the TLS key {path}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The key file holds no PEM private key.
    #[error(
        "{path} holds no PEM private key (expected PKCS#8 `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
    )]
    BadKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is not the certificate's.
    #[error("the TLS key {key} does not belong to the certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the pair for another reason (unsupported key type, bad certificate).
    #[error("the TLS certificate {cert} and key {key} cannot be used")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

/// A loaded certificate and key, ready to accept TLS connections. Clones share the acceptor,
/// so a [`TlsConfig::reload`] reaches the listener. `Debug` shows the file paths only.
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: Arc<RwLock<TlsAcceptor>>,
    cert: PathBuf,
    key: PathBuf,
    handshake_timeout: Duration,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Loads a PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 RSA
    /// or SEC1 EC) and checks that the key belongs to the leaf certificate.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            acceptor: Arc::new(RwLock::new(acceptor_from_pem_files(cert, key)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// Reads the certificate and key files again (a renewed certificate) with every check of
    /// [`TlsConfig::from_pem_files`]; new connections get the new pair, open ones keep theirs.
    /// On an error the current pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = acceptor_from_pem_files(&self.cert, &self.key)?;
        *self.acceptor.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
        Ok(())
    }

    /// The acceptor for the next connection.
    fn current(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The same certificate with another handshake timeout (tests use a short one).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

/// Loads a PEM certificate chain and key and checks that they belong together.
fn acceptor_from_pem_files(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = std::fs::read(cert)
        .map_err(|source| TlsError::ReadCertificate { path: cert.to_owned(), source })?;
    let key_pem =
        std::fs::read(key).map_err(|source| TlsError::ReadKey { path: key.to_owned(), source })?;
    let bad_cert = |reason: String| TlsError::BadCertificate { path: cert.to_owned(), reason };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad_cert("no `BEGIN CERTIFICATE` section".to_owned()));
    }
    // The parse error is not shown: it could quote the key file's contents.
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| TlsError::BadKey { path: key.to_owned() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rejected =
        |source| TlsError::Rejected { cert: cert.to_owned(), key: key.to_owned(), source };
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => {
                TlsError::KeyMismatch { cert: cert.to_owned(), key: key.to_owned() }
            }
            other => rejected(other),
        })?;
    // The server speaks HTTP/1.1 only (WebSocket upgrades need it).
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// A TCP listener that hands out TLS streams whose handshake has finished. Each handshake runs
/// in its own task, bounded by the configured timeout and [`MAX_PENDING_HANDSHAKES`]; a client
/// that fails or stalls its handshake is closed and never reaches the HTTP server. Dropping the
/// listener stops accepting.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_loop: JoinHandle<()>,
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Starts accepting on `listener` (needs a tokio runtime).
    pub fn new(listener: TcpListener, tls: &TlsConfig) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        let accept_loop =
            tokio::spawn(accept_loop(listener, tls.clone(), tls.handshake_timeout, sender));
        Ok(Self { local_addr, ready, accept_loop })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Accepts TCP connections and hands each to a handshake task.
async fn accept_loop(
    listener: TcpListener,
    tls: TlsConfig,
    timeout: Duration,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&pending).acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_error(error).await;
                continue;
            }
        };
        let acceptor = tls.current();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server has stopped: the connection is dropped.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    tracing::debug!(%peer, ?timeout, "TLS handshake timed out");
                }
            }
            drop(permit);
        });
    }
}

/// As axum's own listener: a reset connection is skipped; anything else (e.g. out of file
/// descriptors) is logged and accepting pauses for a second.
async fn accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn self_signed() -> rcgen::CertifiedKey {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap()
    }

    #[test]
    fn a_matching_pair_loads_and_debug_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let pair = self_signed();
        let cert = write(dir.path(), "cert.pem", &pair.cert.pem());
        let key = write(dir.path(), "key.pem", &pair.key_pair.serialize_pem());
        let config = TlsConfig::from_pem_files(&cert, &key).unwrap();
        let debug = format!("{config:?}");
        assert!(debug.contains("cert.pem") && !debug.contains("PRIVATE"), "{debug}");
        assert_eq!(config.cert_path(), cert);
    }

    #[test]
    fn reload_takes_a_renewed_pair_and_keeps_the_old_one_when_the_new_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (self_signed(), self_signed());
        let cert = write(dir.path(), "cert.pem", &first.cert.pem());
        let key = write(dir.path(), "key.pem", &first.key_pair.serialize_pem());
        let config = TlsConfig::from_pem_files(&cert, &key).unwrap();
        let listener_copy = config.clone();
        let before = Arc::as_ptr(listener_copy.current().config());
        // Renewed: both files replaced.
        write(dir.path(), "cert.pem", &second.cert.pem());
        write(dir.path(), "key.pem", &second.key_pair.serialize_pem());
        config.reload().unwrap();
        let renewed = Arc::as_ptr(listener_copy.current().config());
        assert_ne!(before, renewed, "the clone the listener holds sees the new pair");
        // Half-renewed (new certificate, old key): refused, the renewed pair stays.
        write(dir.path(), "cert.pem", &self_signed().cert.pem());
        let error = config.reload().unwrap_err();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        assert_eq!(Arc::as_ptr(listener_copy.current().config()), renewed);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = write(dir.path(), "cert.pem", &self_signed().cert.pem());
        let key = write(dir.path(), "key.pem", &self_signed().key_pair.serialize_pem());
        let error = TlsConfig::from_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        assert!(error.to_string().contains("does not belong"), "{error}");
    }

    #[test]
    fn missing_swapped_and_garbage_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let pair = self_signed();
        let cert = write(dir.path(), "cert.pem", &pair.cert.pem());
        let key = write(dir.path(), "key.pem", &pair.key_pair.serialize_pem());
        let missing = dir.path().join("absent.pem");
        let garbage = write(dir.path(), "garbage.pem", "not a PEM file at all\n");

        let error = TlsConfig::from_pem_files(&missing, &key).unwrap_err();
        assert!(matches!(error, TlsError::ReadCertificate { .. }), "{error}");
        assert!(error.to_string().contains("absent.pem"), "{error}");
        let error = TlsConfig::from_pem_files(&cert, &missing).unwrap_err();
        assert!(matches!(error, TlsError::ReadKey { .. }), "{error}");
        let error = TlsConfig::from_pem_files(&garbage, &key).unwrap_err();
        assert!(matches!(error, TlsError::BadCertificate { .. }), "{error}");
        let error = TlsConfig::from_pem_files(&cert, &garbage).unwrap_err();
        assert!(matches!(error, TlsError::BadKey { .. }), "{error}");
        // Certificate and key given the wrong way round.
        let error = TlsConfig::from_pem_files(&key, &cert).unwrap_err();
        assert!(matches!(error, TlsError::BadCertificate { .. }), "{error}");
    }
}
