//! API keys through the real binary (reliability AU-4, AU-5, WS-5): an operator key reads but
//! changes and exports nothing, the per-key `/ws` cap (`DDFR_MAX_CONNECTIONS_PER_KEY`), a
//! revocation closes the key's socket with 1008, keys survive a restart (loaded by
//! `ddfr serve` from the database) and no secret reaches the trace log.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ddfr_e2e::{Server, ServerOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ADMIN: &str = "adm1n-Tok3n-keys-91c4";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn options(data_dir: Option<std::path::PathBuf>) -> ServerOptions {
    let env =
        [("RUST_LOG", "trace"), ("DDFR_API_TOKEN", ADMIN), ("DDFR_MAX_CONNECTIONS_PER_KEY", "1")];
    ServerOptions {
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        data_dir,
        ..ServerOptions::default()
    }
}

/// The `/ws` handshake with `token`: the socket, or the refusal's HTTP status.
async fn connect(server: &Server, token: &str) -> Result<Result<Ws, u16>> {
    let mut request = server.ws_url().into_client_request()?;
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse()?);
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Ok(Err(response.status().as_u16()))
        }
        Err(error) => Err(error.into()),
    }
}

async fn create_key(
    client: &reqwest::Client,
    server: &Server,
    body: Value,
) -> Result<(i64, String)> {
    let response =
        client.post(server.url("/api/keys")).bearer_auth(ADMIN).json(&body).send().await?;
    if response.status().as_u16() != 201 {
        bail!("creating a key: {} {}", response.status(), response.text().await?);
    }
    let reply: Value = response.json().await?;
    let id = reply["key"]["id"].as_i64().context("key id")?;
    let secret = reply["secret"].as_str().context("secret")?.to_owned();
    Ok((id, secret))
}

#[tokio::test]
async fn keys_work_through_the_binary_and_survive_a_restart() -> Result<()> {
    let mut server = Server::start_with(options(None)).await?;
    let client = reqwest::Client::new();
    let (desk_id, desk) =
        create_key(&client, &server, json!({ "name": "desk", "role": "operator" })).await?;
    let (_, door) =
        create_key(&client, &server, json!({ "name": "door", "role": "recognizer" })).await?;
    let status = |request: reqwest::RequestBuilder| async move {
        Ok::<u16, anyhow::Error>(request.send().await?.status().as_u16())
    };
    // AU-4 through the binary.
    assert_eq!(status(client.get(server.url("/api/persons")).bearer_auth(&desk)).await?, 200);
    assert_eq!(status(client.get(server.url("/api/persons")).bearer_auth(&door)).await?, 403);
    assert_eq!(status(client.delete(server.url("/api/persons/1")).bearer_auth(&desk)).await?, 403);
    assert_eq!(
        status(client.get(server.url("/api/persons/1/export")).bearer_auth(&desk)).await?,
        403
    );
    assert_eq!(status(client.get(server.url("/api/keys")).bearer_auth(&desk)).await?, 403);

    // WS-5: one connection per key here; another key still connects.
    let mut ws = connect(&server, &desk).await?.map_err(|s| anyhow::anyhow!("refused {s}"))?;
    assert_eq!(connect(&server, &desk).await?.err(), Some(503));
    let door_ws = connect(&server, &door).await?.map_err(|s| anyhow::anyhow!("refused {s}"))?;
    drop(door_ws);

    // AU-5: revoking closes the open socket with 1008.
    let frame =
        ddfr_e2e::encode_jpeg(&image::RgbImage::from_pixel(64, 48, image::Rgb([7, 7, 7])), 80)?;
    ws.send(Message::binary(frame)).await?;
    let reply = tokio::time::timeout(Duration::from_secs(30), ws.next()).await?;
    assert!(matches!(reply, Some(Ok(Message::Text(_)))), "{reply:?}");
    let revoked_at = Instant::now();
    let response = client
        .delete(server.url(&format!("/api/keys/{desk_id}")))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 204);
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await? {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => bail!("the socket ended without a close frame: {other:?}"),
        }
    };
    let after = revoked_at.elapsed();
    println!("real binary: close {close:?} {after:?} after the revocation request");
    assert_eq!(close, Some(1008));
    assert!(after < Duration::from_secs(5));
    assert_eq!(status(client.get(server.url("/api/persons")).bearer_auth(&desk)).await?, 401);

    // Restart on the same data dir: the keys are loaded from the database.
    let data_dir = server.data_dir.clone();
    let log_before = std::fs::read(data_dir.join("server.log"))?;
    server.terminate(Duration::from_secs(10))?;
    let server = Server::start_with(options(Some(data_dir.clone()))).await?;
    assert_eq!(status(client.get(server.url("/api/persons")).bearer_auth(&desk)).await?, 401);
    assert!(connect(&server, &door).await?.is_ok(), "the other key opens /ws after a restart");
    assert_eq!(connect(&server, &desk).await?.err(), Some(401));
    let list: Value =
        client.get(server.url("/api/keys")).bearer_auth(ADMIN).send().await?.json().await?;
    let statuses: Vec<_> =
        list["items"].as_array().context("items")?.iter().map(|k| k["status"].clone()).collect();
    assert_eq!(statuses, [json!("revoked"), json!("active")]);

    // No secret in the trace logs of either run, nor in the database files.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut log = log_before;
    log.extend(std::fs::read(data_dir.join("server.log"))?);
    let mut db = std::fs::read(data_dir.join("ddfr.db"))?;
    db.extend(std::fs::read(data_dir.join("ddfr.db-wal")).unwrap_or_default());
    for secret in [&desk, &door] {
        for (what, bytes) in [("log", &log), ("database", &db)] {
            assert!(
                !bytes.windows(20).any(|w| w == &secret.as_bytes()[5..25]),
                "part of a secret is in the {what}"
            );
        }
    }
    println!("scanned {} bytes of trace log and {} of database: no secret", log.len(), db.len());
    Ok(())
}
