//! The default server (loopback, no token) as an attacker's web page and as its real users see
//! it, through the built binary (issue 12, reliability AU-7/AU-8, IV-1): cross-site writes,
//! DNS rebinding (a foreign `Host`), content types and CORS are refused with nothing in the
//! store changed, while scripts (no `Origin`), the app's own origin and bearer tokens keep
//! working; real camera frames (a 3840×2160 JPEG, a 1920×1080 PNG) are answered with boxes in
//! the frame's own coordinates, and a 40000×40000 PNG bomb is still `null` within a second.
//! The same attacks from a real browser are in `web/tests/security.test.mjs`.

use std::io::Cursor;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ddfr_e2e::{
    Server, ServerOptions, add_face, create_person, identity_photos, read_rgb, testdata,
};
use futures_util::SinkExt;
use image::{DynamicImage, RgbImage};
use reqwest::header::{CONTENT_TYPE, HOST, ORIGIN};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use ddfr_e2e::Ws;

const EVIL: &str = "http://evil.example";
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything an attacker could change, as the API shows it: persons with their faces, and the
/// audit log's length.
async fn dump(server: &Server) -> Result<Value> {
    let client = reqwest::Client::new();
    let persons: Value =
        client.get(server.url("/api/persons?limit=1000")).send().await?.json().await?;
    let mut faces = Vec::new();
    for person in persons["items"].as_array().context("items")? {
        let id = person["id"].as_i64().context("id")?;
        let list: Value = client
            .get(server.url(&format!("/api/persons/{id}/faces")))
            .send()
            .await?
            .json()
            .await?;
        faces.push(list);
    }
    let audit: Value = client.get(server.url("/api/audit?limit=1000")).send().await?.json().await?;
    Ok(
        json!({ "persons": persons, "faces": faces, "audit": audit["items"].as_array().map(Vec::len) }),
    )
}

/// Sends a raw request and returns the status and the error code of the body, if any.
async fn attempt(request: reqwest::RequestBuilder) -> Result<(u16, String)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body["error"]["code"].as_str().unwrap_or("").to_owned()))
}

fn person_json() -> String {
    json!({"name": "Mallory", "surname": "Evil", "birthday": "1990-01-01",
        "relationship": "altro", "role": "guest"})
    .to_string()
}

#[tokio::test]
async fn cross_site_writes_rebinding_and_wrong_content_types_change_nothing() -> Result<()> {
    let Some(data) = testdata() else {
        println!("SKIPPED: test data not found (set DDFR_TESTDATA)");
        return Ok(());
    };
    let server = Server::start().await?;
    // A refused request's body is never read, so the server closes that connection: no pooling,
    // or the next attack could be sent on a connection already closing.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let photo = std::fs::read(&identity_photos(&data, "barack_obama")?[0])?;
    // A script (no Origin, JSON declared) is the household's own curl: it works.
    let person = create_person(&server, None, "Ada", "Lovelace").await?;
    let (status, body) = add_face(&server, None, person, photo.clone()).await?;
    ensure!(status == 201, "enrollment by a script: {status} {body}");
    let before = dump(&server).await?;

    let persons = server.url("/api/persons");
    let withdraw = server.url(&format!("/api/persons/{person}/consent/withdraw"));
    let faces = server.url(&format!("/api/persons/{person}/faces"));
    let form = || {
        reqwest::multipart::Form::new()
            .part("image", reqwest::multipart::Part::bytes(photo.clone()).file_name("x.jpg"))
    };
    let attacks: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "text/plain POST from another site",
            client
                .post(&persons)
                .header(ORIGIN, EVIL)
                .header(CONTENT_TYPE, "text/plain")
                .body(person_json()),
            403,
            "origin_not_allowed",
        ),
        (
            "JSON POST from another site",
            client
                .post(&persons)
                .header(ORIGIN, EVIL)
                .header(CONTENT_TYPE, "application/json")
                .body(person_json()),
            403,
            "origin_not_allowed",
        ),
        (
            "consent withdrawal from another site",
            client.post(&withdraw).header(ORIGIN, EVIL),
            403,
            "origin_not_allowed",
        ),
        (
            "multipart upload from another site",
            client.post(&faces).header(ORIGIN, EVIL).multipart(form()),
            403,
            "origin_not_allowed",
        ),
        (
            "a page on another port of localhost (same site, other origin)",
            client.post(&withdraw).header(ORIGIN, "http://127.0.0.1:1"),
            403,
            "origin_not_allowed",
        ),
        (
            "an opaque origin (sandboxed frame, file://)",
            client.delete(server.url(&format!("/api/persons/{person}"))).header(ORIGIN, "null"),
            403,
            "origin_not_allowed",
        ),
        (
            "a cross-site request without Origin (Fetch Metadata)",
            client.post(&withdraw).header("sec-fetch-site", "cross-site"),
            403,
            "cross_site_request",
        ),
        (
            "a cross-site image load of a face crop",
            client
                .get(server.url(&format!("/api/persons/{person}/faces/1/crop")))
                .header("sec-fetch-site", "cross-site")
                .header("sec-fetch-mode", "no-cors"),
            403,
            "cross_site_request",
        ),
        (
            "a cookie session write without an origin proof (CSRF)",
            client.post(&withdraw).header("cookie", "ddfr_session=whatever"),
            403,
            "csrf_failed",
        ),
        (
            "text/plain JSON without Origin",
            client.post(&persons).header(CONTENT_TYPE, "text/plain").body(person_json()),
            415,
            "unsupported_media_type",
        ),
        (
            "a form-encoded body",
            client
                .post(&persons)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("name=Mallory"),
            415,
            "unsupported_media_type",
        ),
        (
            "a JSON body on the upload route",
            client.post(&faces).header(CONTENT_TYPE, "application/json").body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "DNS rebinding: a read under a foreign Host",
            client.get(&persons).header(HOST, format!("attacker.example:{}", server.port())),
            421,
            "host_not_allowed",
        ),
        (
            "DNS rebinding: the export under a foreign Host",
            client
                .get(server.url(&format!("/api/persons/{person}/export")))
                .header(HOST, "127.0.0.1.attacker.example"),
            421,
            "host_not_allowed",
        ),
        (
            "DNS rebinding: a write under a foreign Host and its own origin",
            client
                .post(&withdraw)
                .header(HOST, "rebind.example:80")
                .header(ORIGIN, "http://rebind.example:80"),
            421,
            "host_not_allowed",
        ),
    ];
    for (what, request, status, code) in attacks {
        let got = attempt(request).await.with_context(|| what.to_owned())?;
        ensure!(got == (status, code.to_owned()), "{what}: got {got:?}, expected {status} {code}");
    }

    // The /ws handshake: from another origin, and under a foreign Host.
    for (header, value, expected) in [
        ("Origin", EVIL.to_owned(), 403),
        ("Host", format!("attacker.example:{}", server.port()), 421),
    ] {
        let mut request = server.ws_url().into_client_request()?;
        request.headers_mut().insert(header, value.parse()?);
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                ensure!(response.status() == expected, "/ws with {header}: {}", response.status());
            }
            other => bail!("/ws with a foreign {header} was not refused: {:?}", other.map(|_| ())),
        }
    }

    // No CORS unless configured: even the server's own answers carry no CORS header.
    let response =
        client.get(&persons).header(ORIGIN, server.url("").trim_end_matches('/')).send().await?;
    ensure!(response.status() == 200, "own origin read: {}", response.status());
    ensure!(!response.headers().contains_key("access-control-allow-origin"), "a CORS header");
    let preflight = client
        .request(reqwest::Method::OPTIONS, &persons)
        .header(ORIGIN, EVIL)
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    ensure!(preflight.status() == 403, "preflight from another site: {}", preflight.status());

    let after = dump(&server).await?;
    ensure!(before == after, "the store changed:\nbefore {before}\nafter {after}");

    // The app's own origin (what the browser app sends) still writes; localhost is a name of
    // the server too.
    let own = format!("http://localhost:{}", server.port());
    let response = client
        .post(server.url("/api/persons"))
        .header(HOST, format!("localhost:{}", server.port()))
        .header(ORIGIN, &own)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .header("sec-fetch-site", "same-origin")
        .body(person_json())
        .send()
        .await?;
    ensure!(response.status() == 201, "own origin write: {}", response.status());
    println!("{} attacks refused, store unchanged; own origin and scripts served", 17);
    Ok(())
}

#[tokio::test]
async fn configured_names_origins_and_cors_are_honoured_and_tokens_still_work() -> Result<()> {
    let token = "security-test-token-0123456789";
    let server = Server::start_with(ServerOptions {
        env: vec![
            ("DDFR_API_TOKEN".into(), token.into()),
            ("DDFR_ALLOWED_HOSTS".into(), "ddfr.home.example,*.lan".into()),
            ("DDFR_CORS_ORIGINS".into(), "https://dash.home.example".into()),
        ],
        ..ServerOptions::default()
    })
    .await?;
    let client = reqwest::Client::new();
    let persons = server.url("/api/persons");
    // curl with a bearer token: unchanged.
    let response = client.get(&persons).bearer_auth(token).send().await?;
    ensure!(response.status() == 200, "bearer read: {}", response.status());
    // A configured name and a subdomain of a configured suffix are this server; others are not.
    for (host, status) in
        [("ddfr.home.example", 200), ("door.lan:8443", 200), ("evil.example", 421)]
    {
        let got = client.get(&persons).bearer_auth(token).header(HOST, host).send().await?;
        ensure!(got.status() == status, "Host {host}: {}", got.status());
    }
    // The configured CORS origin gets its preflight answered and may read; no other origin.
    let preflight = client
        .request(reqwest::Method::OPTIONS, &persons)
        .header(ORIGIN, "https://dash.home.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await?;
    ensure!(preflight.status() == 204, "preflight: {}", preflight.status());
    ensure!(
        preflight.headers()["access-control-allow-origin"] == "https://dash.home.example",
        "{:?}",
        preflight.headers()
    );
    let read = client
        .get(&persons)
        .bearer_auth(token)
        .header(ORIGIN, "https://dash.home.example")
        .send()
        .await?;
    ensure!(read.status() == 200, "CORS read: {}", read.status());
    ensure!(read.headers()["access-control-allow-origin"] == "https://dash.home.example");
    // A token does not open the door to another origin.
    let evil = client.get(&persons).bearer_auth(token).header(ORIGIN, EVIL).send().await?;
    ensure!(evil.status() == 403, "token from another origin: {}", evil.status());
    Ok(())
}

/// The next text reply as JSON (see [`ddfr_e2e::next_reply`]).
async fn next_reply(ws: &mut Ws) -> Result<Value> {
    ddfr_e2e::next_reply(ws, REPLY_TIMEOUT).await
}

fn encode(image: &RgbImage, format: image::ImageFormat) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone()).write_to(&mut out, format)?;
    Ok(out.into_inner())
}

/// The one face's box in a reply, as (top, right, bottom, left).
fn one_box(reply: &Value) -> Result<[f64; 4]> {
    let faces = reply["faces"].as_array().with_context(|| format!("no faces in {reply}"))?;
    ensure!(faces.len() == 1, "{} faces in {reply}", faces.len());
    let f = &faces[0];
    let get = |k: &str| f[k].as_f64().with_context(|| format!("{k} in {f}"));
    Ok([get("top")?, get("right")?, get("bottom")?, get("left")?])
}

/// `photo` scaled by `scale` and pasted at (`x`, `y`) on a grey `width`×`height` frame.
fn frame_with(photo: &RgbImage, scale: f64, x: u32, y: u32, width: u32, height: u32) -> RgbImage {
    let (w, h) = (
        (f64::from(photo.width()) * scale).round() as u32,
        (f64::from(photo.height()) * scale).round() as u32,
    );
    let big = image::imageops::resize(photo, w, h, image::imageops::FilterType::Triangle);
    let mut frame = RgbImage::from_pixel(width, height, image::Rgb([118, 118, 118]));
    image::imageops::overlay(&mut frame, &big, i64::from(x), i64::from(y));
    frame
}

#[tokio::test]
async fn real_camera_frames_are_answered_in_their_own_coordinates_and_bombs_are_not() -> Result<()>
{
    let Some(data) = testdata() else {
        println!("SKIPPED: test data not found (set DDFR_TESTDATA)");
        return Ok(());
    };
    let server = Server::start().await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    let photo = read_rgb(&identity_photos(&data, "barack_obama")?[0])?;
    // The face where the photo itself puts it, at the photo's own size.
    ws.send(Message::binary(encode(&photo, image::ImageFormat::Png)?)).await?;
    let [top, right, bottom, left] = one_box(&next_reply(&mut ws).await?)?;
    let side = (bottom - top).max(right - left);

    for (what, width, height, format, scale, x, y) in [
        ("3840x2160 JPEG", 3840u32, 2160u32, image::ImageFormat::Jpeg, 2.5, 1900u32, 700u32),
        ("1920x1080 PNG", 1920, 1080, image::ImageFormat::Png, 1.25, 300, 200),
    ] {
        let frame = frame_with(&photo, scale, x, y, width, height);
        let bytes = encode(&frame, format)?;
        let mut times = Vec::new();
        let mut got = [0.0; 4];
        for _ in 0..5 {
            let sent = Instant::now();
            ws.send(Message::binary(bytes.clone())).await?;
            let reply = next_reply(&mut ws).await?;
            times.push(sent.elapsed());
            got = one_box(&reply).with_context(|| what.to_owned())?;
        }
        let expected = [
            top * scale + f64::from(y),
            right * scale + f64::from(x),
            bottom * scale + f64::from(y),
            left * scale + f64::from(x),
        ];
        let tolerance = 0.08 * side * scale;
        for (edge, (g, e)) in got.iter().zip(expected).enumerate() {
            ensure!(
                (g - e).abs() <= tolerance,
                "{what}: edge {edge} at {g}, expected {e} ± {tolerance:.0} (box {got:?} vs {expected:?})"
            );
        }
        times.sort();
        println!(
            "{what}: {} bytes, box {got:?} (expected {expected:?}), median {:.0?}, max {:.0?}",
            bytes.len(),
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }

    // A PNG declaring 40000x40000 pixels: null at once, the connection stays open.
    let bomb = png_bomb(40_000, 40_000)?;
    let sent = Instant::now();
    ws.send(Message::binary(bomb)).await?;
    let reply = next_reply(&mut ws).await?;
    let took = sent.elapsed();
    ensure!(reply.is_null(), "bomb answered {reply}");
    ensure!(took < Duration::from_secs(1), "bomb took {took:?}");
    ws.send(Message::binary(encode(&photo, image::ImageFormat::Jpeg)?)).await?;
    ensure!(next_reply(&mut ws).await?["status"] == "ok", "the connection serves on");
    println!("40000x40000 PNG bomb: null in {took:.1?}");
    Ok(())
}

/// A real, valid PNG declaring `width`×`height` grey pixels whose image data is one small
/// deflate stream of zeros (a few KB that would inflate to `width * height` bytes).
fn png_bomb(width: u32, height: u32) -> Result<Vec<u8>> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; width as usize + 1];
    for _ in 0..64 {
        encoder.write_all(&row)?;
    }
    chunk(&mut png, b"IDAT", &encoder.finish()?);
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}
