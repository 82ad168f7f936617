//! End-to-end auth: no token ever reaches the server's output, even at `RUST_LOG=trace`
//! (reliability AU-3), and the recognize-only key (`DDFR_RECOGNIZE_TOKEN`) recognizes on
//! `/ws` and REST but manages nobody (AU-4).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use ddfr_e2e::{
    Server, ServerOptions, add_face, create_person, identity_photos, jpeg_frame, read_rgb, testdata,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ADMIN: &str = "adm1n-Tok3n-7e51c0a2";
const CAMERA: &str = "cam3ra-K3y-40d9be17";
/// Wrong tokens, each distinctive enough to find in a log.
const WRONG: [&str; 4] =
    ["wr0ng-header-5a1d", "wr0ng-cookie-66c3", "wr0ng-login-b7e2", "wr0ng-ws-0f4a"];

fn options(env: &[(&str, &str)]) -> ServerOptions {
    ServerOptions {
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..ServerOptions::default()
    }
}

async fn status(request: reqwest::RequestBuilder) -> Result<u16> {
    Ok(request.send().await?.status().as_u16())
}

/// The `/ws` handshake status with `Authorization: Bearer token` (101 when it opened).
async fn ws_handshake(server: &Server, token: &str) -> Result<u16> {
    let mut request = server.ws_url().into_client_request()?;
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse()?);
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, response)) => {
            let frame = ddfr_e2e::encode_jpeg(
                &image::RgbImage::from_pixel(64, 48, image::Rgb([7, 7, 7])),
                80,
            )?;
            ws.send(Message::binary(frame)).await?;
            let _ = tokio::time::timeout(Duration::from_secs(30), ws.next()).await?;
            Ok(response.status().as_u16())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Ok(response.status().as_u16())
        }
        Err(error) => Err(error.into()),
    }
}

#[tokio::test]
async fn no_token_appears_in_the_log_even_at_trace_level() -> Result<()> {
    let server = Server::start_with(options(&[
        ("RUST_LOG", "trace"),
        ("DDFR_API_TOKEN", ADMIN),
        ("DDFR_RECOGNIZE_TOKEN", CAMERA),
    ]))
    .await?;
    let client = reqwest::Client::new();
    let persons = || client.get(server.url("/api/persons"));
    let cookie = |token: &str| format!("ddfr_session={token}");
    let login =
        |token: &str| client.post(server.url("/api/login")).json(&json!({ "token": token }));

    // Header.
    assert_eq!(status(persons().bearer_auth(ADMIN)).await?, 200);
    assert_eq!(status(persons().bearer_auth(CAMERA)).await?, 403);
    assert_eq!(status(persons().bearer_auth(WRONG[0])).await?, 401);
    // Cookie.
    assert_eq!(status(persons().header("Cookie", cookie(ADMIN))).await?, 200);
    assert_eq!(status(persons().header("Cookie", cookie(CAMERA))).await?, 403);
    assert_eq!(status(persons().header("Cookie", cookie(WRONG[1]))).await?, 401);
    // Login route.
    assert_eq!(status(login(ADMIN)).await?, 204);
    assert_eq!(status(login(CAMERA)).await?, 204);
    assert_eq!(status(login(WRONG[2])).await?, 401);
    // The /ws handshake.
    assert_eq!(ws_handshake(&server, ADMIN).await?, 101);
    assert_eq!(ws_handshake(&server, CAMERA).await?, 101);
    assert_eq!(ws_handshake(&server, WRONG[3]).await?, 401);
    // The audit trail of the logins was written (sqlx traces its statements at this level).
    let audit: Value =
        client.get(server.url("/api/audit")).bearer_auth(ADMIN).send().await?.json().await?;
    assert!(audit["total"].as_u64().unwrap_or(0) >= 3, "{audit}");

    // Let the server flush what it logged for the last requests.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Read as bytes: JPEG bytes in the log would not be UTF-8.
    let bytes = std::fs::read(server.data_dir.join("server.log"))?;
    assert!(!bytes.windows(3).any(|w| w == [0xFF, 0xD8, 0xFF]), "JPEG bytes in the log");
    let log = String::from_utf8_lossy(&bytes).into_owned();
    assert!(log.contains("TRACE"), "the server did not log at trace level:\n{log}");
    assert!(log.len() > 10_000, "suspiciously short trace log ({} bytes)", log.len());
    for token in [ADMIN, CAMERA].iter().chain(WRONG.iter()) {
        assert!(!log.contains(token), "token {token:?} is in the log");
        // Nor a recognisable part of it.
        assert!(!log.contains(&token[..12]), "a prefix of {token:?} is in the log");
    }
    // Nor the credential carriers or frame bytes (raw JPEG magic, base64 JPEG prefix).
    for needle in ["Bearer ", "ddfr_session=", "\u{fffd}\u{fffd}\u{fffd}", "/9j/"] {
        assert!(!log.contains(needle), "{needle:?} is in the log");
    }
    println!("scanned {} bytes of trace log: no token, cookie or frame bytes found", log.len());
    Ok(())
}

/// `POST /api/recognize` (one image) or `/api/verify` (two) with `token`.
async fn rest_photo(
    server: &Server,
    path: &str,
    token: &str,
    photo: &[u8],
) -> Result<(u16, Value)> {
    let mut form = reqwest::multipart::Form::new();
    let fields: &[&str] = if path.ends_with("verify") { &["image1", "image2"] } else { &["image"] };
    for field in fields {
        form =
            form.part(*field, reqwest::multipart::Part::bytes(photo.to_vec()).file_name("p.jpg"));
    }
    let response = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn the_recognize_key_recognizes_but_manages_nobody() -> Result<()> {
    let server =
        Server::start_with(options(&[("DDFR_API_TOKEN", ADMIN), ("DDFR_RECOGNIZE_TOKEN", CAMERA)]))
            .await?;
    let client = reqwest::Client::new();
    let (photo, name) = match testdata() {
        Some(data) => {
            let path = identity_photos(&data, "katy_perry")?;
            let id = create_person(&server, Some(ADMIN), "katy_perry", "E2e").await?;
            let (status, body) =
                add_face(&server, Some(ADMIN), id, std::fs::read(&path[0])?).await?;
            assert_eq!(status, 201, "{body}");
            let other = path.get(1).unwrap_or(&path[0]);
            (jpeg_frame(&read_rgb(other)?, 640, 80)?, Some("katy_perry"))
        }
        None => {
            println!("note: $DDFR_TESTDATA not found; recognition runs on a frame without a face");
            let grey = image::RgbImage::from_pixel(320, 240, image::Rgb([90, 90, 90]));
            (ddfr_e2e::encode_jpeg(&grey, 80)?, None)
        }
    };

    // /ws with the recognize key: the seed's reply, with the enrolled name.
    let mut request = server.ws_url().into_client_request()?;
    request.headers_mut().insert("Authorization", format!("Bearer {CAMERA}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    ws.send(Message::binary(photo.clone())).await?;
    let reply: Value = loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await?
            .context("closed")??
        {
            Message::Text(text) => break serde_json::from_str(text.as_str())?,
            Message::Ping(_) | Message::Pong(_) => {}
            other => bail!("unexpected {other:?}"),
        }
    };
    assert_eq!(reply["status"], "ok", "{reply}");
    if let Some(name) = name {
        assert_eq!(reply["faces"][0]["name"], name, "{reply}");
    }

    // REST recognition with the recognize key.
    let (status, body) = rest_photo(&server, "/api/recognize", CAMERA, &photo).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    let (status, body) = rest_photo(&server, "/api/verify", CAMERA, &photo).await?;
    let expected = if name.is_some() { 200 } else { 422 };
    assert_eq!(status, expected, "{body}");

    // Everything else is the admin's.
    let person = json!({"name": "x", "surname": "y", "birthday": "1990-01-01",
        "relationship": "amico", "role": "guest"});
    for request in [
        client.get(server.url("/api/persons")),
        client.post(server.url("/api/persons")).json(&person),
        client.get(server.url("/api/persons/1")),
        client.delete(server.url("/api/persons/1")),
        client.get(server.url("/api/persons/1/export")),
        client.get(server.url("/api/audit")),
        client.get(server.url("/api/unknowns")),
    ] {
        let response = request.bearer_auth(CAMERA).send().await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
    }
    let persons: Value =
        client.get(server.url("/api/persons")).bearer_auth(ADMIN).send().await?.json().await?;
    assert_eq!(persons["total"], if name.is_some() { 1 } else { 0 }, "{persons}");
    Ok(())
}
