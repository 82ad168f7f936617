//! End-to-end TLS: the built `ddfr serve` given a self-signed certificate made at test time
//! (rcgen) serves HTTPS and WSS to clients that trust exactly that certificate; plain HTTP on
//! the port is not served; a stalled handshake is closed without holding up anyone else; the
//! session cookie is `Secure`; a key that does not match the certificate, or only one of the
//! two files, refuses to start.
//!
//! Prints the TLS handshake + first reply latency. With `DDFR_TLS_BENCH=1` it also streams the
//! same frames over plain `ws://` and `wss://` (one client, one frame in flight) and prints
//! both rates.

// Measurements and skip notes are the test's output.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ddfr_e2e::{
    Server, ServerOptions, ddfr_binary, free_port, identity_photos, jpeg_frame, read_rgb,
    repo_root, testdata,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long the server may take to become healthy (debug builds load models slowly).
const STARTUP: Duration = Duration::from_secs(60);
/// How long one reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The server's TLS handshake timeout (`ddfr_server::tls::HANDSHAKE_TIMEOUT`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const TOKEN: &str = "tls-e2e-token-5c0d";

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files.
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
    pem: String,
}

fn certificate(dir: &Path, name: &str) -> Result<Certificate> {
    let pair =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, pair.cert.pem())?;
    std::fs::write(&key, pair.key_pair.serialize_pem())?;
    Ok(Certificate { cert, key, der: pair.cert.der().clone(), pem: pair.cert.pem() })
}

/// A `ddfr serve` with TLS, killed on drop.
struct TlsServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsServer {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `ddfr serve` on a free loopback port with a fresh data dir and the given environment.
fn serve_command(data_dir: &Path, port: u16, env: &[(&str, &Path)]) -> Result<Command> {
    let mut command = Command::new(ddfr_binary()?);
    command
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .env("DDFR_MODELS_DIR", repo_root().join("models"))
        .env("DDFR_API_TOKEN", TOKEN)
        .env("DDFR_WS_MAX_FPS", "1000")
        .env_remove("DDFR_DATABASE_URL")
        .env_remove("DDFR_TLS_CERT")
        .env_remove("DDFR_TLS_KEY");
    for (key, value) in env {
        command.env(key, value);
    }
    Ok(command)
}

/// Starts the server with `cert` and waits until `GET /api/health` answers 200 over HTTPS.
async fn start_tls(dir: &Path, cert: &Certificate, client: &reqwest::Client) -> Result<TlsServer> {
    let port = free_port()?;
    let log = dir.join("server.log");
    let file = std::fs::File::create(&log)?;
    let child =
        serve_command(dir, port, &[("DDFR_TLS_CERT", &cert.cert), ("DDFR_TLS_KEY", &cert.key)])?
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .context("starting ddfr serve")?;
    let server = TlsServer { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), log };
    let started = Instant::now();
    while started.elapsed() < STARTUP {
        if let Ok(response) = client.get(format!("https://{}/api/health", server.addr)).send().await
            && response.status().is_success()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the TLS server did not become healthy; log:\n{}", server.log())
}

/// An HTTPS client that trusts only `cert`.
fn https_client(cert: &Certificate) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes())?)
        .build()?)
}

fn rustls_client(cert: &Certificate) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens `wss://localhost:port/ws` with the token and an optional `Origin`.
async fn connect_wss(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    origin: Option<&str>,
) -> Result<Wss> {
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let mut request = format!("wss://localhost:{}/ws", addr.port()).into_client_request()?;
    request.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse()?);
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse()?);
    }
    Ok(tokio_tungstenite::client_async(request, stream).await?.0)
}

async fn round_trip<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    frame: &[u8],
) -> Result<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::binary(frame.to_vec())).await?;
    loop {
        match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await?.context("socket closed")?? {
            Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
            Message::Ping(_) | Message::Pong(_) => {}
            other => bail!("unexpected message {other:?}"),
        }
    }
}

/// A 640-px JPEG of a face from the test set, else a grey frame without one.
fn test_frame() -> Result<(Vec<u8>, bool)> {
    match testdata() {
        Some(data) => {
            let photo = &identity_photos(&data, "barack_obama")?[0];
            Ok((jpeg_frame(&read_rgb(photo)?, 640, 80)?, true))
        }
        None => {
            println!("note: $DDFR_TESTDATA not found; the wss frame has no face");
            let grey = image::RgbImage::from_pixel(640, 480, image::Rgb([90, 90, 90]));
            Ok((ddfr_e2e::encode_jpeg(&grey, 80)?, false))
        }
    }
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

#[tokio::test]
async fn serves_https_and_wss_and_refuses_plain_http() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cert = certificate(dir.path(), "server")?;
    let client = https_client(&cert)?;
    let server = start_tls(dir.path(), &cert, &client).await?;
    let base = format!("https://{}", server.addr);
    assert!(server.log().contains(&format!("https://{}", server.addr)), "{}", server.log());

    // A client whose handshake stalls (TCP connected, no ClientHello) is held by the server for
    // at most the handshake timeout, and meanwhile nobody else waits for it.
    let mut stalled = TcpStream::connect(server.addr).await?;
    let stalled_since = Instant::now();

    let health: Value = client.get(format!("{base}/api/health")).send().await?.json().await?;
    assert_eq!(health["status"], "ok", "{health}");

    // Handshake + first reply, each on a fresh connection.
    let mut fresh = Vec::new();
    for _ in 0..20 {
        let one = https_client(&cert)?;
        let started = Instant::now();
        let status = one.get(format!("{base}/api/health")).send().await?.status();
        fresh.push(started.elapsed());
        assert_eq!(status.as_u16(), 200);
    }
    let mut reused = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        client.get(format!("{base}/api/health")).send().await?.error_for_status()?;
        reused.push(started.elapsed());
    }
    println!(
        "HTTPS GET /api/health: new connection (TCP + TLS handshake + reply) median {:.2} ms, \
         reused connection median {:.2} ms",
        median_ms(fresh),
        median_ms(reused)
    );

    // The token rules hold over HTTPS, and the session cookie is Secure.
    let persons = client.get(format!("{base}/api/persons")).send().await?.status();
    assert_eq!(persons.as_u16(), 401);
    let login = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "token": TOKEN }))
        .send()
        .await?;
    assert_eq!(login.status().as_u16(), 204);
    let cookie = login.headers()["set-cookie"].to_str()?.to_owned();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");

    // wss: a real JPEG frame gets the seed's reply.
    let tls = rustls_client(&cert)?;
    let (frame, has_face) = test_frame()?;
    let started = Instant::now();
    let mut ws = connect_wss(server.addr, &tls, None).await?;
    let reply = round_trip(&mut ws, &frame).await?;
    let first = started.elapsed();
    assert_eq!(reply["status"], "ok", "{reply}");
    let faces = reply["faces"].as_array().context("faces")?;
    if has_face {
        assert_eq!(faces.len(), 1, "{reply}");
        for field in ["id", "top", "right", "bottom", "left", "name", "age"] {
            assert!(faces[0].get(field).is_some(), "missing {field}: {reply}");
        }
        assert_eq!(faces[0]["name"], "Unknown", "nobody is enrolled: {reply}");
    }
    let mut frames = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        round_trip(&mut ws, &frame).await?;
        frames.push(started.elapsed());
    }
    println!(
        "wss:///ws: connect + TLS + upgrade + first frame reply {:.1} ms; later frames median {:.1} ms",
        first.as_secs_f64() * 1000.0,
        median_ms(frames)
    );
    ws.close(None).await?;

    // Over TLS the server's own origin is the https one.
    let own = format!("https://localhost:{}", server.addr.port());
    let mut ws = connect_wss(server.addr, &tls, Some(&own)).await?;
    assert_eq!(round_trip(&mut ws, &frame).await?["status"], "ok");
    let plain_origin = format!("http://localhost:{}", server.addr.port());
    match connect_wss(server.addr, &tls, Some(&plain_origin)).await {
        Err(error) => match error.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            Some(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 403)
            }
            _ => bail!("expected 403 for an http:// origin, got {error}"),
        },
        Ok(_) => bail!("an http:// origin opened /ws on a TLS server"),
    }

    // Plain HTTP on the TLS port is not served: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(server.addr).await?;
    plain.write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    ensure!(read.is_ok(), "the server kept a plain-HTTP connection open");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was served: {:?}",
        String::from_utf8_lossy(&answer)
    );
    let http =
        reqwest::Client::new().get(format!("http://{}/api/health", server.addr)).send().await;
    assert!(http.is_err() || !http.is_ok_and(|r| r.status().is_success()));
    // ...and the failed handshakes hurt nobody: the open socket and new clients still work.
    assert_eq!(round_trip(&mut ws, &frame).await?["status"], "ok");
    let status = https_client(&cert)?.get(format!("{base}/api/health")).send().await?.status();
    assert_eq!(status.as_u16(), 200);

    // The stalled handshake is closed by the server after its timeout.
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(HANDSHAKE_TIMEOUT * 2, stalled.read(&mut byte)).await;
    let held = stalled_since.elapsed();
    ensure!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the stalled handshake was not closed: {closed:?}"
    );
    assert!(held >= HANDSHAKE_TIMEOUT - Duration::from_millis(500), "closed after {held:?}");
    println!("a stalled TLS handshake was closed after {:.1} s", held.as_secs_f64());

    if std::env::var_os("DDFR_TLS_BENCH").is_some_and(|v| v == "1") {
        bench_against_plain(server.addr, &tls, &frame).await?;
    }
    Ok(())
}

/// One client, one frame in flight, `n` frames over plain `ws://` and over `wss://`.
async fn bench_against_plain(
    tls_addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    frame: &[u8],
) -> Result<()> {
    const N: usize = 200;
    let plain = Server::start_with(ServerOptions {
        env: vec![("DDFR_WS_MAX_FPS".into(), "1000".into())],
        ..ServerOptions::default()
    })
    .await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(plain.ws_url()).await?;
    let mut wss = connect_wss(tls_addr, tls, None).await?;
    for _ in 0..5 {
        round_trip(&mut ws, frame).await?;
        round_trip(&mut wss, frame).await?;
    }
    for round in 0..2 {
        let started = Instant::now();
        for _ in 0..N {
            round_trip(&mut ws, frame).await?;
        }
        let plain_fps = N as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..N {
            round_trip(&mut wss, frame).await?;
        }
        let tls_fps = N as f64 / started.elapsed().as_secs_f64();
        println!(
            "round {round}: {N} frames of {} bytes, one client: ws {plain_fps:.1} FPS, wss {tls_fps:.1} FPS",
            frame.len()
        );
    }
    Ok(())
}

/// Runs `ddfr serve` with `env` and expects it to refuse to start: exit non-zero with
/// `message` on stderr, having never accepted a connection.
async fn refuses_to_start(env: &[(&str, &Path)], message: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut child = serve_command(dir.path(), port, env)?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        ensure!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "the server listened although it should refuse to start"
        );
        if started.elapsed() > STARTUP {
            let _ = child.kill();
            bail!("ddfr serve did not exit");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "exit status {status}");
    assert!(stderr.contains(message), "stderr: {stderr}");
    assert!(!stderr.contains("PRIVATE KEY-----"), "key material on stderr: {stderr}");
    Ok(())
}

#[tokio::test]
async fn a_mismatched_key_or_half_a_pair_refuses_to_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let a = certificate(dir.path(), "a")?;
    let b = certificate(dir.path(), "b")?;
    refuses_to_start(&[("DDFR_TLS_CERT", &a.cert), ("DDFR_TLS_KEY", &b.key)], "does not belong")
        .await?;
    refuses_to_start(&[("DDFR_TLS_CERT", &a.cert)], "DDFR_TLS_KEY").await?;
    refuses_to_start(&[("DDFR_TLS_KEY", &a.key)], "DDFR_TLS_CERT").await?;
    let missing = dir.path().join("missing.pem");
    refuses_to_start(&[("DDFR_TLS_CERT", &missing), ("DDFR_TLS_KEY", &a.key)], "missing.pem")
        .await?;
    refuses_to_start(
        &[("DDFR_TLS_CERT", &a.key), ("DDFR_TLS_KEY", &a.cert)],
        "not a PEM certificate",
    )
    .await?;
    Ok(())
}

/// The certificate a new TLS connection to `addr` is shown.
async fn presented(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).context("no cert")?;
    Ok(leaf.as_ref().to_vec())
}

/// Sends SIGHUP and waits for the log line that answers it (the `count`-th of either kind).
async fn hang_up(server: &TlsServer, count: usize) -> Result<String> {
    let status = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status()?;
    ensure!(status.success(), "kill -HUP failed");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let log = server.log();
        let answers: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("TLS certificate reloaded") || l.contains("not reloaded"))
            .collect();
        if answers.len() >= count {
            return Ok(answers[count - 1].to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("no answer to SIGHUP in the log:\n{}", server.log())
}

#[tokio::test]
async fn sighup_reloads_a_renewed_certificate_and_open_connections_keep_going() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (first, second, third) = (
        certificate(dir.path(), "first")?,
        certificate(dir.path(), "second")?,
        certificate(dir.path(), "third")?,
    );
    // The server reads fixed paths, as with a certbot-managed `live/` directory.
    let live = Certificate {
        cert: dir.path().join("live-cert.pem"),
        key: dir.path().join("live-key.pem"),
        der: first.der.clone(),
        pem: first.pem.clone(),
    };
    let install = |from: &Certificate, cert: bool, key: bool| -> Result<()> {
        if cert {
            std::fs::copy(&from.cert, &live.cert)?;
        }
        if key {
            std::fs::copy(&from.key, &live.key)?;
        }
        Ok(())
    };
    install(&first, true, true)?;
    let server = start_tls(dir.path(), &live, &https_client(&first)?).await?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in [&first, &second, &third] {
        roots.add(cert.der.clone())?;
    }
    let trusting_all = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    ensure!(presented(server.addr, &trusting_all).await? == first.der.as_ref());
    let (frame, _) = test_frame()?;
    let mut open = connect_wss(server.addr, &trusting_all, None).await?;
    round_trip(&mut open, &frame).await?;

    // Renewed: both files replaced, then SIGHUP.
    install(&second, true, true)?;
    let answer = hang_up(&server, 1).await?;
    ensure!(answer.contains("TLS certificate reloaded"), "{answer}");
    ensure!(presented(server.addr, &trusting_all).await? == second.der.as_ref(), "old cert");
    let reply = round_trip(&mut open, &frame).await?;
    ensure!(reply["status"] == "ok", "the connection opened before the reload: {reply}");

    // Half-renewed (a new certificate with the old key): refused, the current pair stays.
    install(&third, true, false)?;
    let answer = hang_up(&server, 2).await?;
    ensure!(answer.contains("not reloaded") && answer.contains("does not belong"), "{answer}");
    ensure!(presented(server.addr, &trusting_all).await? == second.der.as_ref(), "bad pair used");
    let health =
        https_client(&second)?.get(format!("https://{}/api/health", server.addr)).send().await?;
    ensure!(health.status() == 200, "health after a refused reload: {}", health.status());
    println!("SIGHUP: renewed certificate served to new connections; a mismatched pair refused");
    Ok(())
}
