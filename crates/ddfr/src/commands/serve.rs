//! `ddfr serve`: the composition root. Settings → listener → (models, store, index) → ready.
//!
//! The listener is bound first so `/api/health` answers 503 while models and the index load,
//! and 200 from the moment they are in place. Everything that can refuse a start without
//! models (the TLS certificate and key, the tokens) is checked before binding.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use ddfr_core::ModelId;
use ddfr_index::IndexConfig;
use ddfr_server::privacy::{PrivacyConfig, flush_last_matches, run_retention};
use ddfr_server::visitors::{delete_all_visitors, run_visitor_retention, run_visitor_writer};
use ddfr_server::{
    ApiToken, AppState, Gallery, InferencePool, ServerConfig, Services, TlsConfig, VisitorRegistry,
    VisitorsConfig,
};
use ddfr_store::PersonStore;

use crate::engine::EngineArgs;
use crate::settings::{ServeArgs, TOKEN_FILE};

/// Default log filter when RUST_LOG is unset: ddfr at info, request traces quiet.
const DEFAULT_LOG_FILTER: &str = "info,tower_http=warn,sqlx=warn";

/// Runs the server until SIGTERM or ctrl-c.
pub fn run(engine: &EngineArgs, args: &ServeArgs) -> Result<()> {
    args.validate()?;
    init_logging(&args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(engine.clone(), args.clone()))
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    // A second initialisation (tests) is harmless; ignore it.
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

async fn serve(engine: EngineArgs, args: ServeArgs) -> Result<()> {
    let started = Instant::now();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig::from_pem_files(cert, key)?),
        _ => None,
    };
    if args.recognize_token.is_some() && args.api_token.is_none() && args.host.is_loopback() {
        anyhow::bail!(
            "DDFR_RECOGNIZE_TOKEN needs an admin token: set DDFR_API_TOKEN too (a loopback \
             server without one leaves every route open, so a recognize-only key would mean nothing)"
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.addr())
        .await
        .with_context(|| format!("listening on {}", args.addr()))?;
    let addr = listener.local_addr().context("reading the bound address")?;

    let mut config = ServerConfig::new(addr);
    let scheme = if tls.is_some() { "https" } else { "http" };
    config.api_token = resolve_token(&args, addr, scheme)?;
    config.recognize_token = args.recognize_token.as_deref().map(|key| ApiToken::new(key.trim()));
    config.trusted_proxies = args.trusted_proxies.clone();
    #[cfg(unix)]
    if let Some(tls) = &tls {
        tokio::spawn(reload_certificate_on_sighup(tls.clone()));
    }
    config.tls = tls;
    config.allowed_hosts = args.allowed_hosts.clone();
    if !addr.ip().is_loopback() {
        config.allowed_hosts.extend(own_host_names());
    }
    config.allowed_origins = args.allowed_origins.clone();
    config.cors_origins = args.cors_origins.clone();
    let message_bytes = usize::try_from(args.ws_max_message_bytes).unwrap_or(usize::MAX);
    config.max_ws_message_bytes = message_bytes;
    config.frame_limits = ddfr_engine::decode::DecodeLimits {
        max_bytes: message_bytes,
        max_width: args.max_frame_side,
        max_height: args.max_frame_side,
        max_pixels: args.max_frame_pixels,
        max_decode_time: Some(std::time::Duration::from_millis(args.max_decode_ms)),
        ..ddfr_engine::decode::DecodeLimits::FRAME
    };
    config.strict_enrollment = args.strict_enrollment;
    config.max_ws_connections = usize::from(args.max_connections);
    config.max_ws_connections_per_key = usize::from(args.max_connections_per_key);
    config.ws_max_fps = args.ws_max_fps;
    config.ws_ping_interval = std::time::Duration::from_secs(args.ws_ping_interval);
    config.ws_pong_timeout = std::time::Duration::from_secs(args.ws_pong_timeout);
    config.ws_idle_timeout =
        (args.ws_idle_timeout > 0).then(|| std::time::Duration::from_secs(args.ws_idle_timeout));
    config.request_head_timeout = std::time::Duration::from_secs(args.request_head_timeout);
    config.web_dir = args.web_dir();
    config.privacy = PrivacyConfig {
        retention_days: args.retention_days,
        require_consent: args.require_consent,
        notice_version: args.privacy_notice_version.trim().to_owned(),
    };
    if config.web_dir.is_none() {
        tracing::info!("web app not built (no web/dist/index.html); / explains how to build it");
    }
    let state = AppState::new(config);
    tracing::info!(
        %addr,
        url = %format!("{}://{addr}/", state.config().scheme()),
        tls = state.config().tls.is_some(),
        auth = state.config().api_token.is_some(),
        recognize_key = state.config().recognize_token.is_some(),
        trusted_proxies = state.config().trusted_proxies.len(),
        allowed_hosts = %state.config().allowed_hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        "listening"
    );

    let server = tokio::spawn(ddfr_server::serve(listener, state.clone(), shutdown_signal()));
    match load_services(&engine, &args).await {
        Ok(services) => {
            let (n_persons, n_faces) = (services.gallery.n_persons(), services.gallery.n_faces());
            // The API keys live in the same store; they authenticate from now on.
            if let Err(error) = state.keys().attach(Arc::clone(&services.store)).await {
                state.begin_shutdown();
                server.abort();
                return Err(error).context("loading the API keys");
            }
            // The events read names from the gallery; connections feed them from now on.
            let directory = ddfr_server::events::GalleryDirectory(Arc::clone(&services.gallery));
            let events = ddfr_events::Events::start(
                args.events_config()?,
                Arc::new(directory),
                Arc::new(ddfr_events::SystemClock),
            )
            .context("starting the home-automation events")?;
            state.set_events(events);
            state.set_ready(services);
            if let Ok(services) = state.services() {
                tokio::spawn(run_retention(services, state.config().privacy.clone()));
            }
            tracing::info!(
                n_persons,
                n_faces,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "ready"
            );
        }
        Err(error) => {
            state.begin_shutdown();
            server.abort();
            return Err(error);
        }
    }
    let served = server.await.context("server task failed")?.context("serving");
    // The last recognitions since the previous flush count for retention too.
    if let Ok(services) = state.services() {
        let written = flush_last_matches(&services).await;
        tracing::debug!(written, "last-match times written at shutdown");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Loads the pack, opens the store and builds the gallery.
async fn load_services(engine: &EngineArgs, args: &ServeArgs) -> Result<Services> {
    let workers = args.workers();
    let loader = engine.clone();
    let pack_task = tokio::task::spawn_blocking(move || loader.load_pack(workers));
    let url = args.database_url();
    let options = args.store_options()?;
    let store = ddfr_store::open_store_with(&url, &options)
        .await
        .map_err(crate::settings::explain_store_error)
        .with_context(|| format!("opening the database {url}"))?;
    let pack = Arc::new(pack_task.await.context("model loading panicked")??);
    let model = pack.embedder_id().clone();
    let min_similarity = args.match_threshold.unwrap_or(pack.min_similarity);
    tracing::info!(
        pack = pack.id,
        detector = pack.detector_id,
        embedder = model.as_str(),
        backend = ?pack.backend,
        workers,
        min_similarity,
        "models loaded"
    );
    let impostor_prior = engine
        .manifest(None)?
        .pack(&engine.pack)
        .map(|spec| spec.impostor_prior.clone())
        .unwrap_or_default();
    if impostor_prior.is_none() {
        tracing::info!("the pack has no impostor-score prior: replies carry no false_accept_rate");
    }
    let gallery = Arc::new(
        Gallery::load(store.as_ref(), &model, pack.embedding_dim(), IndexConfig::default())
            .await
            .context("building the face index from the store")?
            .with_impostor_model(impostor_prior),
    );
    let pool = InferencePool::new(pack, workers);
    reembed_other_models(store.as_ref(), &pool, &gallery, &model).await?;
    let visitors = start_visitors(args, &store, &model, min_similarity).await?;
    Ok(Services { pool, store, gallery, min_similarity, visitors })
}

/// The unknown-visitor registry and its background tasks when the feature is on; when it is
/// off, deletes whatever an earlier run kept.
async fn start_visitors(
    args: &ServeArgs,
    store: &Arc<dyn PersonStore>,
    model: &ModelId,
    min_similarity: f32,
) -> Result<Option<Arc<VisitorRegistry>>> {
    if !args.unknown_visitors {
        let deleted = delete_all_visitors(store.as_ref())
            .await
            .context("deleting unknown visitors kept by an earlier run")?;
        if deleted > 0 {
            tracing::info!(deleted, "unknown-visitor feature is off: stored visitors deleted");
        }
        return Ok(None);
    }
    let config = VisitorsConfig::from_days(args.unknown_retention_days);
    let stored = store.visitors().await.context("loading unknown visitors")?;
    let (registry, writes) = VisitorRegistry::new(model.clone(), min_similarity, config, stored);
    let registry = Arc::new(registry);
    tokio::spawn(run_visitor_writer(Arc::clone(store), writes));
    tokio::spawn(run_visitor_retention(Arc::clone(store), Arc::clone(&registry)));
    tracing::info!(
        visitors = registry.entries().len(),
        retention_days = args.unknown_retention_days,
        "unknown-visitor feature on"
    );
    Ok(Some(registry))
}

/// When stored faces were embedded by another model, re-embeds their stored chips with the
/// current one (when the chip fits its input), so a model change never mixes vectors.
async fn reembed_other_models(
    store: &dyn PersonStore,
    pool: &InferencePool,
    gallery: &Gallery,
    model: &ModelId,
) -> Result<()> {
    let others: Vec<_> = store
        .embedding_models()
        .await?
        .into_iter()
        .filter(|m| &m.model != model && m.n_embeddings > 0)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let missing = store.faces_without_embedding(model).await?;
    tracing::warn!(
        other_models = ?others.iter().map(|m| m.model.as_str().to_owned()).collect::<Vec<_>>(),
        n_faces = missing.len(),
        "stored faces were embedded by another model; re-embedding their crops with {}",
        model.as_str()
    );
    let (mut done, mut skipped) = (0usize, 0usize);
    for (face, person) in missing {
        let crop = store.face_crop(person, face).await?;
        let embedding = pool
            .run(move |pack| ddfr_server::pipeline::reembed_chip(pack, &crop))
            .await
            .context("re-embedding a stored crop")?;
        match embedding {
            Ok(Some(embedding)) => {
                store.set_embedding(face, model, &embedding).await?;
                gallery.insert_face(face, person, &embedding)?;
                done += 1;
            }
            Ok(None) | Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(
            done,
            skipped,
            "some stored crops could not be re-embedded (their chip does not fit the new model); re-enroll those persons"
        );
    } else {
        tracing::info!(done, "re-embedded stored faces");
    }
    Ok(())
}

/// The token: `DDFR_API_TOKEN`; none on a loopback-only bind; otherwise the one stored in the
/// data dir, generated (and printed as a login URL with `scheme`) on first start.
fn resolve_token(
    args: &ServeArgs,
    addr: std::net::SocketAddr,
    scheme: &str,
) -> Result<Option<ApiToken>> {
    if let Some(token) = &args.api_token {
        return Ok(Some(ApiToken::new(token.trim())));
    }
    if addr.ip().is_loopback() {
        return Ok(None);
    }
    let path = args.data_dir.join(TOKEN_FILE);
    if path.is_file() {
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the API token from {}", path.display()))?;
        tracing::info!(file = %path.display(), "API token required (stored in the data dir)");
        return Ok(Some(ApiToken::new(token.trim())));
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, &token)?;
    let host =
        if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    let url = format!("{scheme}://{host}:{}/#token={token}", addr.port());
    // Printed once, on stdout, like Jupyter; never logged through tracing.
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "\nddfr is listening on a non-loopback address, so it requires a token.\n\
         Open this URL to log in (the token is saved in {}):\n\n    {url}\n",
        path.display()
    )?;
    Ok(Some(ApiToken::new(token)))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("creating {}", path.display()))
}

/// Resolves on ctrl-c or SIGTERM.
/// On SIGHUP, reads the TLS certificate and key again (after a renewal); a pair that fails its
/// checks is logged and the current one stays in use.
#[cfg(unix)]
async fn reload_certificate_on_sighup(tls: ddfr_server::TlsConfig) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP: certificate reloads need a restart");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!(cert = %tls.cert_path().display(), "TLS certificate reloaded"),
            Err(error) => tracing::error!(
                error = %ddfr_server::error::error_chain(&error),
                "TLS certificate not reloaded; the current one stays in use"
            ),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The machine's host name and its mDNS spelling (`<name>.local`), which a household types to
/// reach a server on the LAN; neither can be rebound by a remote site. Empty when unknown.
fn own_host_names() -> Vec<ddfr_server::guard::HostPattern> {
    let name = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".local").unwrap_or(&name).to_owned();
    if name.is_empty() || name == "localhost" {
        return Vec::new();
    }
    [name.clone(), format!("{name}.local")].iter().filter_map(|n| n.parse().ok()).collect()
}
