//! Connection liveness and clean closes, black box (`docs/reliability.md` WS-4, IV-3), on the
//! real `ddfr serve` with
//! short test values (`DDFR_REQUEST_HEAD_TIMEOUT=2`, `DDFR_WS_IDLE_TIMEOUT=3`):
//! sockets that connect and send nothing, and a Slowloris client dribbling its request head, are
//! dropped at the head deadline; a keep-alive connection that completed its request is not; a
//! `/ws` client that sends no frame is closed with 1000 at the idle timeout while one that keeps
//! sending (less often than the timeout) stays open; other clients are served throughout.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ddfr_e2e::{Server, ServerOptions, encode_jpeg};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Scheduling slack on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(1500);

/// Reads until the server closes the connection; when that happened and what was read.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Result<(Instant, Vec<u8>)> {
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
            Err(_) => bail!("still open after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return Ok((Instant::now(), read)),
            Ok(Ok(n)) => read.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One `GET /api/health` on a raw keep-alive connection; the status line.
async fn raw_health(stream: &mut TcpStream) -> Result<String> {
    stream.write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&reply).contains("\"status\"") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await??;
        ensure!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&reply).lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn silent_and_slow_sockets_are_dropped_and_idle_websockets_closed() -> Result<()> {
    let server = Server::start_with(ServerOptions {
        env: vec![
            ("DDFR_REQUEST_HEAD_TIMEOUT".into(), HEAD_TIMEOUT.as_secs().to_string()),
            ("DDFR_WS_IDLE_TIMEOUT".into(), IDLE_TIMEOUT.as_secs().to_string()),
        ],
        ..ServerOptions::default()
    })
    .await?;

    // Ten sockets that send nothing, one Slowloris client, one keep-alive client.
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(&server.addr).await?);
    }
    let mut slow = TcpStream::connect(&server.addr).await?;
    let slow_head =
        b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let dribble = tokio::spawn(async move {
        let mut sent = 0;
        for byte in slow_head {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closed = until_closed(&mut slow, Duration::from_secs(30)).await.map(|(at, _)| at);
        (sent, slow_head.len(), closed)
    });
    let mut keep_alive = TcpStream::connect(&server.addr).await?;
    ensure!(raw_health(&mut keep_alive).await?.contains("200"), "first keep-alive request");

    // Meanwhile a normal client is served.
    let health = reqwest::get(server.url("/api/health")).await?;
    ensure!(health.status() == 200, "health while sockets hang: {}", health.status());

    for (index, socket) in silent.iter_mut().enumerate() {
        let (at, read) = until_closed(socket, HEAD_TIMEOUT + SLACK * 4).await?;
        let after = at - opened;
        ensure!(read.is_empty(), "silent socket {index} got {} bytes", read.len());
        ensure!(
            after >= HEAD_TIMEOUT - Duration::from_millis(100) && after <= HEAD_TIMEOUT + SLACK,
            "silent socket {index} closed after {after:?} (timeout {HEAD_TIMEOUT:?})"
        );
    }
    let (sent, total, closed) = dribble.await?;
    let after = closed? - opened;
    ensure!(sent < total, "the Slowloris client got its whole head ({total} bytes) in");
    ensure!(after <= HEAD_TIMEOUT + SLACK, "Slowloris client closed after {after:?}");
    println!(
        "silent sockets and a Slowloris client ({sent} of {total} bytes) dropped after {after:?}"
    );

    // The keep-alive connection outlived the head deadline and is still served.
    ensure!(opened.elapsed() > HEAD_TIMEOUT, "checked too early");
    ensure!(raw_health(&mut keep_alive).await?.contains("200"), "keep-alive after the deadline");

    // /ws: an idle client is closed with 1000 at the idle timeout (answering pings does not
    // count as activity); a client sending a frame every 2 s stays open past it.
    let frame = encode_jpeg(&image::RgbImage::from_pixel(320, 240, image::Rgb([40, 90, 160])), 80)?;
    let (mut idle, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    let (mut active, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    let connected = Instant::now();
    let active_task = tokio::spawn(async move {
        let mut replies = 0;
        while connected.elapsed() < IDLE_TIMEOUT * 2 {
            active.send(Message::binary(frame.clone())).await?;
            loop {
                match tokio::time::timeout(Duration::from_secs(30), active.next()).await? {
                    Some(Ok(Message::Text(_))) => break,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    other => bail!("active client: {other:?} after {:?}", connected.elapsed()),
                }
            }
            replies += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok::<_, anyhow::Error>(replies)
    });
    let close = loop {
        match tokio::time::timeout(IDLE_TIMEOUT + SLACK * 4, idle.next()).await? {
            Some(Ok(Message::Close(frame))) => break frame.context("close without a code")?,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => bail!("idle client: {other:?}"),
        }
    };
    let idle_after = connected.elapsed();
    ensure!(close.code == CloseCode::Normal, "idle close code {:?}", close.code);
    ensure!(
        idle_after >= IDLE_TIMEOUT - Duration::from_millis(100)
            && idle_after <= IDLE_TIMEOUT + SLACK,
        "idle client closed after {idle_after:?}"
    );
    let replies = active_task.await??;
    ensure!(replies >= 3, "the active client got {replies} replies");
    println!(
        "idle /ws closed {} ({:?}) after {idle_after:?}; the active one got {replies} replies in {:?}",
        u16::from(close.code),
        close.reason.as_str(),
        connected.elapsed()
    );
    Ok(())
}

/// IV-3: a `/ws` message over the 8 MiB limit is refused at its frame header with close 1009;
/// the server then drains the rest of the payload before closing (lingering close), so the
/// client, still writing when the server decided, finishes its write and reads the 1009 instead
/// of a TCP reset. Before the lingering close, a reset was common here.
#[tokio::test]
async fn an_oversized_message_always_gets_1009_never_a_reset() -> Result<()> {
    const ROUNDS: usize = 20;
    let server = Server::start().await?;
    let oversized = vec![0xFFu8; 12 * 1024 * 1024];
    let mut closes = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
        ws.send(Message::binary(oversized.clone()))
            .await
            .with_context(|| format!("round {round}: the write was cut (reset)"))?;
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
                Some(Ok(Message::Close(frame))) => break frame.context("close without a code")?,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => bail!("round {round}: {other:?} instead of a close frame"),
            }
        };
        ensure!(close.code == CloseCode::Size, "round {round}: close {:?}", close.code);
        closes.push(close.code);
    }
    // The server is unharmed and the lingering sockets are gone.
    let health: serde_json::Value = reqwest::get(server.url("/api/health")).await?.json().await?;
    ensure!(health["status"] == "ok", "{health}");
    println!(
        "{} of {ROUNDS} oversized 12 MiB messages answered 1009 with no reset ({:.0?} in all)",
        closes.len(),
        started.elapsed()
    );
    Ok(())
}
