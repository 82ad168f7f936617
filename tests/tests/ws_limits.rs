//! End-to-end `/ws` limits (reliability section B): a client that stops reading is cut off
//! while another keeps being served (WS-3), connection and frame-rate caps (WS-5), latest frame
//! wins at 60 FPS (WS-2). Each test starts the built `ddfr serve` with shortened timeouts and
//! prints what it measured.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ddfr_e2e::{Server, ServerOptions, encode_jpeg, identity_photos, read_rgb, testdata};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use ddfr_e2e::Ws;

/// How long one reply may take (debug builds are slow).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

async fn start(env: &[(&str, &str)]) -> Result<Server> {
    Server::start_with(ServerOptions {
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..ServerOptions::default()
    })
    .await
}

async fn connect(server: &Server) -> Result<Ws> {
    Ok(tokio_tungstenite::connect_async(server.ws_url()).await?.0)
}

/// The next text reply as JSON (see [`ddfr_e2e::next_reply`]).
async fn next_reply(ws: &mut Ws) -> Result<Value> {
    ddfr_e2e::next_reply(ws, REPLY_TIMEOUT).await
}

async fn roundtrip(ws: &mut Ws, bytes: Vec<u8>) -> Result<(Value, Duration)> {
    let sent = Instant::now();
    ws.send(Message::binary(bytes)).await?;
    let reply = next_reply(ws).await?;
    Ok((reply, sent.elapsed()))
}

async fn health(server: &Server) -> Result<Value> {
    Ok(reqwest::get(server.url("/api/health")).await?.json().await?)
}

/// A faceless 640×480 frame: detection runs, the reply is `{"status":"ok","faces":[]}`.
fn plain_frame() -> Result<Vec<u8>> {
    encode_jpeg(&image::RgbImage::from_pixel(640, 480, image::Rgb([40, 90, 160])), 80)
}

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// WS-3: a client that sends frames but never reads (tiny receive buffer) stops answering
/// pings and is closed (1008, when its buffer has room for the close frame) within ping
/// interval + pong timeout, with bounded server
/// memory, while a reading client keeps getting replies at an unchanged latency.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_others_are_served() -> Result<()> {
    let (ping, pong) = (1u64, 2u64);
    let server = start(&[
        ("DDFR_WS_PING_INTERVAL", &ping.to_string()),
        ("DDFR_WS_PONG_TIMEOUT", &pong.to_string()),
    ])
    .await?;
    let frame = plain_frame()?;
    let mut normal = connect(&server).await?;
    let mut baseline = Vec::new();
    for _ in 0..15 {
        baseline.push(roundtrip(&mut normal, frame.clone()).await?.1);
    }
    baseline.sort();
    let rss_before = rss_kib(server.pid());

    // The stalled client: a 4 KiB receive buffer, a completed handshake, frames at 10 FPS,
    // and its read half never polled.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(server.addr.parse()?).await?;
    let (stalled, _) = tokio_tungstenite::client_async(server.ws_url(), tcp).await?;
    let (mut stalled_tx, stalled_rx) = stalled.split();
    let stalled_started = Instant::now();
    let sender_frame = frame.clone();
    let sender = tokio::spawn(async move {
        let mut sent = 0u32;
        while stalled_started.elapsed() < Duration::from_secs(30) {
            if stalled_tx.send(Message::binary(sender_frame.clone())).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (sent, stalled_started.elapsed())
    });

    // Meanwhile the normal client keeps streaming; watch the connection gauge fall to one.
    let mut during = Vec::new();
    let mut cut_after = None;
    while stalled_started.elapsed() < Duration::from_secs(30) {
        during.push(roundtrip(&mut normal, frame.clone()).await?.1);
        if cut_after.is_none() && health(&server).await?["ws_connections"] == 1 {
            cut_after = Some(stalled_started.elapsed());
        }
        if cut_after.is_some() && during.len() >= 30 {
            break;
        }
    }
    let cut_after = cut_after.context("the stalled client was never disconnected")?;
    let rss_after = rss_kib(server.pid());
    let (sent, send_failed_after) = sender.await?;

    // What the stalled client would have read: replies and pings, then close 1008.
    let mut stalled_rx = stalled_rx;
    let mut close = None;
    let mut replies = 0;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(5), stalled_rx.next()).await
    {
        match message {
            Ok(Message::Close(frame)) => {
                close = Some(frame.map(|f| f.code));
                break;
            }
            Ok(Message::Text(_)) => replies += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    during.sort();
    println!(
        "WS-3: stalled client cut after {cut_after:?} (ping {ping} s + pong timeout {pong} s); \
         it sent {sent} frames, its writes failed after {send_failed_after:?}, it had {replies} \
         replies and close {close:?} unread; normal client latency p50/p95 before {:?}/{:?}, \
         during {:?}/{:?} over {} frames; server RSS {rss_before:?} -> {rss_after:?} KiB",
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.95),
        percentile(&during, 0.5),
        percentile(&during, 0.95),
        during.len(),
    );
    assert!(cut_after <= Duration::from_secs(ping + pong + 2), "cut after {cut_after:?}");
    // The close frame reaches the client only if its full receive buffer had room for it.
    if let Some(code) = close {
        assert_eq!(code, Some(CloseCode::Policy), "the stalled client's close code");
    }
    // The normal client was never cut and is still served.
    assert_eq!(roundtrip(&mut normal, frame.clone()).await?.0["status"], "ok");
    let (p95_before, p95_during) = (percentile(&baseline, 0.95), percentile(&during, 0.95));
    assert!(
        p95_during <= p95_before * 2 + Duration::from_millis(100),
        "normal client's p95 latency went from {p95_before:?} to {p95_during:?}"
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(after < before + 30 * 1024, "server RSS grew from {before} to {after} KiB");
    }
    let log = server.log();
    assert!(log.contains("Unresponsive"), "no log line for the stalled client:\n{log}");
    Ok(())
}

/// WS-5: the `DDFR_MAX_CONNECTIONS + 1`th handshake is refused with 503
/// `too_many_connections` before the upgrade; the open streams keep working and a closed one
/// frees its slot.
#[tokio::test]
async fn extra_connections_are_refused_with_503_and_open_ones_keep_working() -> Result<()> {
    let max = 3;
    let server = start(&[("DDFR_MAX_CONNECTIONS", &max.to_string())]).await?;
    let frame = plain_frame()?;
    let mut open = Vec::new();
    for _ in 0..max {
        open.push(connect(&server).await?);
    }
    for _ in 0..3 {
        match tokio_tungstenite::connect_async(server.ws_url()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 503);
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or(b""))?;
                assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
                assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
            }
            other => bail!("expected a 503 refusal, got {:?}", other.map(|_| ())),
        }
    }
    for ws in &mut open {
        assert_eq!(roundtrip(ws, frame.clone()).await?.0["status"], "ok");
    }
    // Closing one frees its slot.
    let mut closed = open.pop().context("a connection")?;
    closed.close(None).await?;
    let started = Instant::now();
    let mut reopened = loop {
        match tokio_tungstenite::connect_async(server.ws_url()).await {
            Ok((ws, _)) => break ws,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => bail!("slot not freed: {error}"),
        }
    };
    println!(
        "WS-5: cap {max}; 3 extra handshakes got 503; slot freed after {:?}",
        started.elapsed()
    );
    assert_eq!(roundtrip(&mut reopened, frame).await?.0["status"], "ok");
    let refused = health(&server).await?["refused_connections"].as_u64().unwrap_or(0);
    assert!(refused >= 3, "refused_connections {refused}");
    Ok(())
}

/// WS-5: the frame-rate cap holds even when the server is idle: cheap undecodable messages at
/// 50 per second against a cap of 10 get about 10 replies per second (without the cap every
/// one is answered), the rest are counted as dropped.
#[tokio::test]
async fn frames_over_the_rate_cap_are_dropped_even_when_idle() -> Result<()> {
    let fps = 10u32;
    let server = start(&[("DDFR_WS_MAX_FPS", &fps.to_string())]).await?;
    let ws = connect(&server).await?;
    let (mut tx, mut rx) = ws.split();
    let (n, period) = (100u32, Duration::from_millis(20));
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        for _ in 0..n {
            ticker.tick().await;
            tx.send(Message::binary(b"not an image".to_vec())).await?;
        }
        // The end marker, after a pause that refills the bucket.
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(Message::text("end")).await?;
        anyhow::Ok(tx)
    });
    let mut replies = 0u32;
    loop {
        let message = tokio::time::timeout(REPLY_TIMEOUT, rx.next()).await?.context("closed")??;
        if let Message::Text(text) = message {
            assert_eq!(text.as_str(), "null");
            replies += 1;
            if sender.is_finished() {
                break;
            }
        }
    }
    let _tx = sender.await??;
    let seconds = n as f64 * period.as_secs_f64();
    let dropped = health(&server).await?["dropped_frames"].as_u64().unwrap_or(0);
    println!(
        "WS-5: {n} messages in {seconds:.1} s at a cap of {fps} FPS -> {replies} replies \
         (incl. the end marker), dropped_frames {dropped}, {:?} total",
        started.elapsed()
    );
    // Without the cap every message of an idle server is answered.
    let most = (seconds * f64::from(fps)).ceil() as u32 + 1 + 1 + 2;
    assert!(replies <= most, "{replies} replies, at most {most} expected");
    assert!(replies >= most / 2, "{replies} replies: the cap dropped too much");
    assert!(dropped >= u64::from(n + 1 - replies), "dropped_frames {dropped}");
    Ok(())
}

/// A frame with the face photo pasted at `x` on a 640×480 canvas.
fn frame_at(face: &image::RgbImage, x: i64) -> Result<Vec<u8>> {
    let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([90, 96, 90]));
    image::imageops::replace(&mut canvas, face, x, 120);
    encode_jpeg(&canvas, 80)
}

/// WS-2: a client streaming at 60 FPS gets far fewer replies than frames, in order (the face
/// moves right 2 px a frame, so each reply says which frame it answers), with bounded latency,
/// and `dropped_frames` grows by the frames left unanswered.
#[tokio::test]
async fn sixty_fps_stream_gets_fewer_ordered_replies_with_bounded_latency() -> Result<()> {
    let Some(data) = testdata() else {
        println!("SKIPPED: no test data (set DDFR_TESTDATA)");
        return Ok(());
    };
    let photo = read_rgb(&identity_photos(&data, "barack_obama")?[0])?;
    let height = 200;
    let width = (photo.width() as f32 * height as f32 / photo.height() as f32) as u32;
    let face =
        image::imageops::resize(&photo, width, height, image::imageops::FilterType::Triangle);
    let (n, step, x0) = (180usize, 2i64, 10i64);
    let frames: Vec<Vec<u8>> =
        (0..n).map(|i| frame_at(&face, x0 + step * i as i64)).collect::<Result<_>>()?;

    // The cap at 30 FPS (the default, 120, is above what this machine processes).
    let server = start(&[("DDFR_WS_MAX_FPS", "30")]).await?;
    let mut ws = connect(&server).await?;
    // Where the detector puts the face of frame 0 (and warm-up).
    let (first, _) = roundtrip(&mut ws, frames[0].clone()).await?;
    let left0 = first["faces"][0]["left"].as_i64().context("no face in frame 0")?;
    let dropped_before = health(&server).await?["dropped_frames"].as_u64().unwrap_or(0);

    let (mut tx, mut rx) = ws.split();
    let started = Instant::now();
    let period = Duration::from_micros(16_667);
    let sender = tokio::spawn(async move {
        let mut sent_at = Vec::with_capacity(frames.len());
        let mut ticker = tokio::time::interval(period);
        for frame in frames {
            ticker.tick().await;
            sent_at.push(Instant::now());
            tx.send(Message::binary(frame)).await?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(Message::text("end")).await?;
        anyhow::Ok((sent_at, tx))
    });
    let mut replies: Vec<(i64, Instant)> = Vec::new();
    loop {
        let message = tokio::time::timeout(REPLY_TIMEOUT, rx.next()).await?.context("closed")??;
        let Message::Text(text) = message else { continue };
        let reply: Value = serde_json::from_str(text.as_str())?;
        if reply.is_null() {
            break;
        }
        let left = reply["faces"][0]["left"].as_i64().context("reply without the face")?;
        replies.push((left, Instant::now()));
    }
    let (sent_at, _tx) = sender.await??;
    let elapsed = started.elapsed();
    let dropped = health(&server).await?["dropped_frames"].as_u64().unwrap_or(0) - dropped_before;

    // Which frame each reply answers, from where the face is; then order and latency.
    let mut latencies = Vec::new();
    let mut previous = -1i64;
    for (left, at) in &replies {
        let index = ((left - left0) as f64 / step as f64).round().clamp(0.0, n as f64 - 1.0) as i64;
        assert!(index + 2 >= previous, "reply for frame {index} after frame {previous}");
        previous = previous.max(index);
        latencies.push(at.saturating_duration_since(sent_at[index as usize]));
    }
    latencies.sort();
    let fps = replies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "WS-2: {n} frames at 60 FPS in {elapsed:?} -> {} replies ({fps:.1}/s), dropped_frames \
         +{dropped}, latency p50 {:?} p95 {:?} max {:?}",
        replies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 1.0),
    );
    // At most the 30 FPS cap (plus its 3-frame burst and the warm-up), far below 60.
    let cap = (elapsed.as_secs_f64() * 30.0).ceil() as usize + 4;
    assert!(replies.len() <= cap.min(n * 6 / 10), "{} replies for {n} frames", replies.len());
    assert!(replies.len() >= 5, "only {} replies", replies.len());
    assert!(dropped >= (n - replies.len()) as u64, "dropped_frames +{dropped}");
    let last = replies.last().context("replies")?.0;
    assert!(last - left0 >= step * (n as i64 - 20), "the last reply is for an old frame ({last})");
    assert!(percentile(&latencies, 1.0) < Duration::from_secs(2), "latency not bounded");
    Ok(())
}
