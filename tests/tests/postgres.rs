//! The binary that `scripts/build` makes serves from PostgreSQL (`DDFR_DATABASE_URL=postgres://…`,
//! the `postgres` feature is on by default): enroll, recognize, restart, recognize again, delete,
//! against the real PostgreSQL of this project's machines (`127.0.0.1:5432`, trust auth), in a
//! database made for the test and dropped after it. Where no PostgreSQL answers it prints
//! SKIPPED — except under `CI`, where that is a broken setup and fails.

#![allow(clippy::print_stdout)] // SKIPPED and what was proved are the test's report

use anyhow::{Context, Result, bail, ensure};
use ddfr_e2e::{
    Server, ServerOptions, add_face, create_person, identity_photos, recognized_ids, testdata,
};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Where the test creates and drops its database (`DDFR_TEST_POSTGRES_URL` overrides).
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A fresh database on the server at `admin_url`, dropped on [`Scratch::drop_now`].
struct Scratch {
    admin_url: String,
    name: String,
}

impl Scratch {
    async fn create(admin_url: &str) -> Result<Option<Self>> {
        let mut admin = match PgConnection::connect(admin_url).await {
            Ok(connection) => connection,
            Err(error) if !in_ci() => {
                println!("SKIPPED: no PostgreSQL at {admin_url} ({error})");
                return Ok(None);
            }
            Err(error) => bail!("CI is set but PostgreSQL at {admin_url} does not answer: {error}"),
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let name = format!("ddfr_e2e_{}_{}", std::process::id(), nanos % 1_000_000_000);
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        Ok(Some(Self { admin_url: admin_url.to_owned(), name }))
    }

    fn url(&self) -> Result<String> {
        let (base, _) = self.admin_url.rsplit_once('/').context("a database URL has a path")?;
        Ok(format!("{base}/{}", self.name))
    }

    async fn drop_now(self) -> Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn the_default_binary_serves_from_postgresql_across_restarts() -> Result<()> {
    let Some(data) = testdata() else {
        println!("SKIPPED: test data not found (set DDFR_TESTDATA)");
        return Ok(());
    };
    let admin_url =
        std::env::var("DDFR_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    let Some(scratch) = Scratch::create(&admin_url).await? else { return Ok(()) };
    let result = story(&data, &scratch.url()?).await;
    scratch.drop_now().await?;
    result
}

async fn story(data: &std::path::Path, url: &str) -> Result<()> {
    let options = ServerOptions {
        env: vec![("DDFR_DATABASE_URL".into(), url.to_owned())],
        ..ServerOptions::default()
    };
    let photos = identity_photos(data, "barack_obama")?;
    let mut server = Server::start_with(options.clone()).await?;
    let person = create_person(&server, None, "Barack", "Obama").await?;
    let (status, body) = add_face(&server, None, person, std::fs::read(&photos[0])?).await?;
    ensure!(status == 201, "enrollment on PostgreSQL: {status} {body}");
    ensure!(recognized_ids(&server, &photos[1]).await? == [person], "recognized before restart");
    server.terminate(std::time::Duration::from_secs(10))?;

    // Another process, another data dir, the same database: it knows the person.
    let server = Server::start_with(options).await?;
    let health: serde_json::Value = reqwest::get(server.url("/api/health")).await?.json().await?;
    ensure!(health["n_faces"] == 1 && health["n_persons"] == 1, "{health}");
    ensure!(recognized_ids(&server, &photos[2]).await? == [person], "recognized after restart");
    let deleted =
        reqwest::Client::new().delete(server.url(&format!("/api/persons/{person}"))).send().await?;
    ensure!(deleted.status() == 204, "delete: {}", deleted.status());
    ensure!(recognized_ids(&server, &photos[2]).await?.is_empty(), "unknown after delete");
    println!("PostgreSQL {url}: enrolled, recognized across a restart, deleted");
    Ok(())
}
