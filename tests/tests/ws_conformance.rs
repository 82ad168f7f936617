//! WebSocket protocol conformance of `/ws` (reliability WS-7) without Autobahn: a raw-socket
//! client that writes frames byte by byte against the built `ddfr serve`, covering the
//! Autobahn testsuite families that matter for ddfr (1–7: framing, pings and pongs, reserved
//! bits, opcodes, fragmentation, UTF-8, close handling; 9 is the size limits, see `e2e.rs`).
//!
//! tungstenite implements the protocol; this test proves our configuration keeps it: fragments
//! are reassembled into one frame, control frames may come between fragments, pings are
//! echoed, every protocol violation is answered with close 1002 (invalid UTF-8 in a text
//! message with 1007), a close is echoed, and each connection's slot is given back (the server
//! runs with `DDFR_MAX_CONNECTIONS=1`, so a leaked slot would refuse the next case's handshake).

#![allow(clippy::print_stdout)] // the per-case table is the test's report

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ddfr_e2e::{Server, ServerOptions, encode_jpeg};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// How long one read may take (a debug build recognising a frame is slow).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One frame as the server sent it.
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A frame as a client writes it; `masked: false` breaks the client-masking rule on purpose.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xFA, 0x21, 0x3D];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn data(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, payload, true)
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// A client connection below the WebSocket library level.
struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    async fn connect(server: &Server) -> Result<Self> {
        let mut stream = TcpStream::connect(&server.addr).await?;
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Self { stream, buffer: Vec::new() };
        let end = loop {
            if let Some(at) = raw.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            ensure!(raw.fill().await? > 0, "connection closed during the handshake");
        };
        let head = String::from_utf8_lossy(&raw.buffer[..end]).into_owned();
        ensure!(head.starts_with("HTTP/1.1 101"), "handshake refused: {head}");
        ensure!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "wrong accept key: {head}"
        );
        raw.buffer.drain(..end);
        Ok(raw)
    }

    /// Reads more bytes into the buffer; 0 at end of stream.
    async fn fill(&mut self) -> Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = match tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk)).await? {
            Ok(n) => n,
            // A reset after the server's close counts as the end of the stream.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(error) => return Err(error.into()),
        };
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// The next frame, or `None` when the server closed the TCP stream.
    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some((frame, used)) = parse(&self.buffer)? {
                self.buffer.drain(..used);
                return Ok(Some(frame));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next frame that is not one of the server's keep-alive pings.
    async fn next_non_ping(&mut self) -> Result<Option<Frame>> {
        loop {
            match self.next_frame().await? {
                Some(frame) if frame.opcode == PING => {}
                other => return Ok(other),
            }
        }
    }

    /// Reads until the server's close frame and the end of the stream; returns the close code
    /// (`None` for a close frame without one). Data frames before it are an error.
    async fn expect_close(&mut self) -> Result<Option<u16>> {
        let frame = self.next_non_ping().await?.context("stream ended without a close frame")?;
        ensure!(frame.opcode == CLOSE, "expected a close frame, got {frame:?}");
        let code = (frame.payload.len() >= 2)
            .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
        // Acknowledge it, then the server ends the TCP stream.
        let _ = self.send(&data(true, CLOSE, &frame.payload)).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.next_frame().await?.is_none() {
                return Ok(code);
            }
        }
        bail!("the server did not end the TCP stream after its close frame")
    }

    /// The next text message, as JSON (fragmented replies are joined).
    async fn reply(&mut self) -> Result<Value> {
        let mut text = Vec::new();
        loop {
            let frame = self.next_non_ping().await?.context("stream ended before a reply")?;
            match frame.opcode {
                TEXT | CONTINUATION => {
                    text.extend_from_slice(&frame.payload);
                    if frame.fin {
                        return Ok(serde_json::from_slice(&text)?);
                    }
                }
                PONG => {}
                _ => bail!("expected a text reply, got {frame:?}"),
            }
        }
    }
}

/// Parses one server frame from the front of `bytes`: the frame and the bytes it used, or
/// `None` when more bytes are needed.
fn parse(bytes: &[u8]) -> Result<Option<(Frame, usize)>> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    ensure!(bytes[1] & 0x80 == 0, "the server masked a frame");
    let (len, mut at) = match bytes[1] & 0x7F {
        126 if bytes.len() >= 4 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
        127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into()?), 10),
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    let len = usize::try_from(len)?;
    if bytes.len() < at + len {
        return Ok(None);
    }
    let frame = Frame {
        fin: bytes[0] & 0x80 != 0,
        opcode: bytes[0] & 0x0F,
        payload: bytes[at..at + len].to_vec(),
    };
    at += len;
    Ok(Some((frame, at)))
}

/// Waits until the server counts no open `/ws` connection.
async fn wait_slot_free(server: &Server) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let health: Value = reqwest::get(server.url("/api/health")).await?.json().await?;
        if health["ws_connections"] == 0 {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("a /ws connection was still counted open 5 s after it ended")
}

/// A faceless frame: the reply is `{"status":"ok","faces":[]}`.
fn jpeg_frame() -> Result<Vec<u8>> {
    encode_jpeg(&image::RgbImage::from_pixel(320, 240, image::Rgb([40, 90, 160])), 80)
}

/// Runs one case on a fresh connection, then checks the slot was given back.
async fn case<F, Fut>(server: &Server, name: &str, body: F) -> Result<()>
where
    F: FnOnce(Raw) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    let raw = Raw::connect(server).await.with_context(|| format!("{name}: connect"))?;
    let outcome = body(raw).await.with_context(|| format!("case {name}"))?;
    let freed = wait_slot_free(server).await.with_context(|| format!("{name}: slot"))?;
    println!("{name:<48} {outcome:<36} slot freed after {} ms", freed.as_millis());
    Ok(())
}

/// Sends `frames` and expects the server to fail the connection with `code`.
async fn violation(server: &Server, name: &str, frames: Vec<Vec<u8>>, code: u16) -> Result<()> {
    case(server, name, |mut raw| async move {
        for bytes in &frames {
            // The server may close before the last bytes are written.
            if raw.send(bytes).await.is_err() {
                break;
            }
        }
        let got = raw.expect_close().await?;
        ensure!(got == Some(code), "expected close {code}, got {got:?}");
        Ok(format!("close {code}"))
    })
    .await
}

#[tokio::test]
async fn autobahn_families_hold_and_every_connection_slot_is_freed() -> Result<()> {
    let server = Server::start_with(ServerOptions {
        env: vec![("DDFR_MAX_CONNECTIONS".to_owned(), "1".to_owned())],
        ..ServerOptions::default()
    })
    .await?;
    let jpeg_bytes = jpeg_frame()?;
    let jpeg = jpeg_bytes.as_slice();
    let third = jpeg.len() / 3;
    let (a, b, c) = (&jpeg[..third], &jpeg[third..2 * third], &jpeg[2 * third..]);

    // 1.x framing: an unfragmented binary frame, and a text message that is not an image.
    case(&server, "1 binary frame", |mut raw| async move {
        raw.send(&data(true, BINARY, jpeg)).await?;
        let reply = raw.reply().await?;
        ensure!(reply["status"] == "ok", "{reply}");
        raw.send(&data(true, TEXT, b"hello")).await?;
        ensure!(raw.reply().await?.is_null(), "a text message is answered with null");
        raw.send(&data(true, CLOSE, &close_payload(1000, ""))).await?;
        ensure!(raw.expect_close().await? == Some(1000));
        Ok("reply ok, text -> null".to_owned())
    })
    .await?;

    // 5.x fragmentation: a JPEG in three fragments gets the normal reply; so does one with a
    // ping and an unsolicited pong between its fragments (the ping is answered at once).
    case(&server, "5 fragmented binary message", |mut raw| async move {
        raw.send(&data(false, BINARY, a)).await?;
        raw.send(&data(false, CONTINUATION, b)).await?;
        raw.send(&data(true, CONTINUATION, c)).await?;
        let reply = raw.reply().await?;
        ensure!(reply["status"] == "ok", "{reply}");
        Ok("reassembled, reply ok".to_owned())
    })
    .await?;
    case(&server, "5 control frames between fragments", |mut raw| async move {
        raw.send(&data(false, BINARY, a)).await?;
        raw.send(&data(true, PING, b"between")).await?;
        raw.send(&data(false, CONTINUATION, b)).await?;
        raw.send(&data(true, PONG, b"unsolicited")).await?;
        raw.send(&data(true, CONTINUATION, c)).await?;
        let pong = raw.next_non_ping().await?.context("no pong")?;
        ensure!(pong.opcode == PONG && pong.payload == b"between", "{pong:?}");
        let reply = raw.reply().await?;
        ensure!(reply["status"] == "ok", "{reply}");
        Ok("pong echoed, reply ok".to_owned())
    })
    .await?;

    // 2.x pings: a 125-byte payload is echoed in the pong; 126 bytes is a violation.
    case(&server, "2 ping with 125-byte payload", |mut raw| async move {
        let payload: Vec<u8> = (0..125u8).collect();
        raw.send(&data(true, PING, &payload)).await?;
        let pong = raw.next_non_ping().await?.context("no pong")?;
        ensure!(pong.opcode == PONG && pong.payload == payload, "{pong:?}");
        Ok("pong echoes the payload".to_owned())
    })
    .await?;
    violation(&server, "2 ping with 126-byte payload", vec![data(true, PING, &[7; 126])], 1002)
        .await?;
    violation(&server, "5 fragmented ping", vec![data(false, PING, b"a")], 1002).await?;

    // 3.x reserved bits, 4.x reserved opcodes, unmasked client frames.
    for rsv in [1u8, 2, 4] {
        let name = format!("3 reserved bits {rsv:03b}");
        violation(&server, &name, vec![frame(true, rsv, BINARY, b"x", true)], 1002).await?;
    }
    for opcode in [3u8, 7, 0xB, 0xF] {
        let name = format!("4 reserved opcode {opcode:#x}");
        violation(&server, &name, vec![data(true, opcode, b"x")], 1002).await?;
    }
    violation(&server, "unmasked client frame", vec![frame(true, 0, BINARY, jpeg, false)], 1002)
        .await?;

    // 5.x fragmentation violations.
    violation(&server, "5 continuation with nothing to continue", vec![data(true, 0, b"x")], 1002)
        .await?;
    violation(
        &server,
        "5 new message inside a fragmented one",
        vec![data(false, BINARY, a), data(true, BINARY, b)],
        1002,
    )
    .await?;

    // 6.x UTF-8: invalid text (a UTF-16 surrogate, also split across fragments) → 1007.
    let invalid = [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xED, 0xA0, 0x80, 0x65, 0x64];
    violation(&server, "6 text with invalid UTF-8", vec![data(true, TEXT, &invalid)], 1007).await?;
    violation(
        &server,
        "6 fragmented text with invalid UTF-8",
        vec![data(false, TEXT, &invalid[..6]), data(true, CONTINUATION, &invalid[6..])],
        1007,
    )
    .await?;

    // 7.x close handling: a close with a code is echoed; an invalid code or a 1-byte payload
    // is a violation.
    for code in [1000u16, 1001, 3000, 4999] {
        let name = format!("7 close {code} echoed");
        case(&server, &name, |mut raw| async move {
            raw.send(&data(true, CLOSE, &close_payload(code, "bye"))).await?;
            let got = raw.expect_close().await?;
            ensure!(got == Some(code), "expected close {code} echoed, got {got:?}");
            Ok(format!("close {code} echoed"))
        })
        .await?;
    }
    for code in [0u16, 999, 1004, 1005, 1006, 1016, 2999] {
        let name = format!("7 close with invalid code {code}");
        violation(&server, &name, vec![data(true, CLOSE, &close_payload(code, ""))], 1002).await?;
    }

    // After all of that the server still serves a normal client.
    case(&server, "still serving", |mut raw| async move {
        raw.send(&data(true, BINARY, jpeg)).await?;
        ensure!(raw.reply().await?["status"] == "ok");
        Ok("reply ok".to_owned())
    })
    .await?;
    Ok(())
}
