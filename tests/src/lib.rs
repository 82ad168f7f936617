//! Helpers for the end-to-end tests and the WebSocket benchmark: start the built `ddfr`
//! binary on a free port with a fresh data dir, talk to it over REST and `/ws`, and build
//! frames from `$DDFR_TESTDATA` photos. [`bench`] holds what the WebSocket benchmarks share.

pub mod bench;

use std::io::Cursor;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use image::{DynamicImage, RgbImage};
use serde_json::Value;

/// A client WebSocket to `ddfr serve` over plain TCP.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text reply on `ws` as JSON (`null` for an undecodable frame), within `timeout`;
/// pings and pongs are skipped (the library answers pings while reading). A close, a binary
/// message or a closed socket is an error.
pub async fn next_reply(ws: &mut Ws, timeout: Duration) -> Result<Value> {
    use futures_util::StreamExt;
    loop {
        let message =
            tokio::time::timeout(timeout, ws.next()).await?.context("socket closed")??;
        match message {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                return Ok(serde_json::from_str(text.as_str())?);
            }
            tokio_tungstenite::tungstenite::Message::Ping(_)
            | tokio_tungstenite::tungstenite::Message::Pong(_) => {}
            other => bail!("unexpected message {other:?}"),
        }
    }
}

/// How long a server may take to answer `/api/health` with 200.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test photo directory: `$DDFR_TESTDATA`, else `../shared/testdata` of the repo, when it
/// exists.
pub fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("DDFR_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/testdata"));
    let found = dir.join("faces").is_dir().then_some(dir.clone());
    required_in_ci(found, &format!("the shared test data ({})", dir.display()))
}

/// In CI (`CI` set, as `.ci/run` runs), what CI is supposed to have must be there: a missing
/// fixture is a broken setup and fails the test instead of letting it print SKIPPED.
fn required_in_ci<T>(found: Option<T>, what: &str) -> Option<T> {
    if found.is_none() && std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!(
            "CI is set but {what} is missing: the CI setup is broken (a local run would print SKIPPED)"
        );
    }
    found
}

/// The `ddfr` binary: `$DDFR_BIN`, else the one next to this test's own executable (same
/// target dir and profile), else `$CARGO_TARGET_DIR` or `target/`, debug then release.
pub fn ddfr_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("DDFR_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test> or target/<profile>/examples/<bench>
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("ddfr"));
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    candidates.push(target.join("debug/ddfr"));
    candidates.push(target.join("release/ddfr"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .context("the ddfr binary is not built: run `cargo build -p ddfr` (or set DDFR_BIN)")
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `ddfr serve`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The data dir (a temp dir owned by the server unless given).
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// Extra settings for a test server.
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Reuse this data dir instead of a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    /// `--host`.
    pub host: Option<String>,
    /// `--workers` (default: the server's, the number of cores).
    pub workers: Option<usize>,
    /// `--intra-threads` (default: the server's, 1).
    pub intra_threads: Option<usize>,
}

impl Server {
    /// Starts a server with default settings and waits until it is healthy.
    pub async fn start() -> Result<Self> {
        Self::start_with(ServerOptions::default()).await
    }

    /// Starts a server and waits until it is healthy.
    pub async fn start_with(options: ServerOptions) -> Result<Self> {
        Self::start_on_port(options, free_port()?).await
    }

    /// Starts a server on `port` (e.g. the port of a server that just stopped, to restart it
    /// in place) and waits until it is healthy.
    pub async fn start_on_port(options: ServerOptions, port: u16) -> Result<Self> {
        let (temp, data_dir) = match options.data_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::tempdir()?;
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let host = options.host.unwrap_or_else(|| "127.0.0.1".to_owned());
        let log = std::fs::File::create(data_dir.join("server.log"))?;
        let mut command = Command::new(ddfr_binary()?);
        command
            .args(["serve", "--host", &host, "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(&data_dir);
        if let Some(workers) = options.workers {
            command.args(["--workers", &workers.to_string()]);
        }
        if let Some(threads) = options.intra_threads {
            command.args(["--intra-threads", &threads.to_string()]);
        }
        command
            .env("DDFR_MODELS_DIR", repo_root().join("models"))
            .env_remove("DDFR_API_TOKEN")
            .env_remove("DDFR_DATABASE_URL")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let child = command.spawn().context("starting ddfr serve")?;
        let server = Self { child, addr: format!("127.0.0.1:{port}"), data_dir, _temp: temp };
        server.wait_healthy(STARTUP_TIMEOUT).await?;
        Ok(server)
    }

    /// Polls `/api/health` until 200.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        while started.elapsed() < timeout {
            if let Ok(response) = client.get(self.url("/api/health")).send().await
                && response.status().is_success()
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("server did not become healthy; log:\n{}", self.log())
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://addr/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit, up to `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("server did not exit within {timeout:?}")
    }

    /// Sends SIGKILL (`kill -9`: no shutdown code runs) and reaps the process.
    pub fn kill(&mut self) -> Result<std::process::ExitStatus> {
        self.child.kill().context("sending SIGKILL")?;
        Ok(self.child.wait()?)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a person and returns its id.
pub async fn create_person(
    server: &Server,
    token: Option<&str>,
    name: &str,
    surname: &str,
) -> Result<i64> {
    let mut request =
        reqwest::Client::new().post(server.url("/api/persons")).json(&serde_json::json!({
            "name": name, "surname": surname, "birthday": "1980-05-17",
            "relationship": "amico", "role": "guest"
        }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if status.as_u16() != 201 {
        bail!("create person: {status} {body}");
    }
    body["id"].as_i64().context("person id")
}

/// Enrolls a photo for a person; returns the status and body.
pub async fn add_face(
    server: &Server,
    token: Option<&str>,
    person: i64,
    photo: Vec<u8>,
) -> Result<(u16, Value)> {
    let form = reqwest::multipart::Form::new()
        .part("image", reqwest::multipart::Part::bytes(photo).file_name("photo.jpg"));
    let mut request = reqwest::Client::new()
        .post(server.url(&format!("/api/persons/{person}/faces")))
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// `POST /api/recognize` with the photo at `path` (no token); the `person_id` of every face that
/// was identified, in reply order.
pub async fn recognized_ids(server: &Server, path: &Path) -> Result<Vec<i64>> {
    let part = reqwest::multipart::Part::bytes(std::fs::read(path)?).file_name("photo.jpg");
    let response = reqwest::Client::new()
        .post(server.url("/api/recognize"))
        .multipart(reqwest::multipart::Form::new().part("image", part))
        .send()
        .await?;
    let status = response.status();
    let reply: Value = response.json().await?;
    if status.as_u16() != 200 {
        bail!("recognize: {status} {reply}");
    }
    let faces = reply["faces"].as_array().context("faces in the recognize reply")?;
    Ok(faces.iter().filter_map(|f| f["person_id"].as_i64()).collect())
}

/// Scales an image so its longer side is at most `max_side`, as JPEG at `quality`.
pub fn jpeg_frame(image: &RgbImage, max_side: u32, quality: u8) -> Result<Vec<u8>> {
    encode_jpeg(&scaled(image, max_side), quality)
}

/// Scales an image so its longer side is at most `max_side`.
pub fn scaled(image: &RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let scale = (max_side as f32 / w.max(h) as f32).min(1.0);
    if scale < 1.0 {
        image::imageops::resize(
            image,
            ((w as f32 * scale).round() as u32).max(1),
            ((h as f32 * scale).round() as u32).max(1),
            image::imageops::FilterType::Triangle,
        )
    } else {
        image.clone()
    }
}

/// Encodes pixels as JPEG.
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(image)?;
    Ok(out.into_inner())
}

/// Decodes a photo file to RGB.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    Ok(image::open(path).with_context(|| format!("opening {}", path.display()))?.to_rgb8())
}

/// The photos of an identity, sorted.
pub fn identity_photos(testdata: &Path, identity: &str) -> Result<Vec<PathBuf>> {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(testdata.join("faces").join(identity))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("png"))
        })
        .collect();
    photos.sort();
    Ok(photos)
}

/// Pastes `faces` side by side into a `width` × `height` grey canvas, each scaled to fit its
/// cell: a synthetic multi-face frame.
pub fn compose_frame(faces: &[RgbImage], width: u32, height: u32) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([96, 96, 96]));
    if faces.is_empty() {
        return canvas;
    }
    let n = faces.len() as u32;
    let columns = if n <= 1 {
        1
    } else if n <= 4 {
        2
    } else {
        3
    };
    let rows = n.div_ceil(columns);
    let (cell_w, cell_h) = (width / columns, height / rows);
    for (i, face) in faces.iter().enumerate() {
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let scale = (cell_w as f32 / face.width() as f32).min(cell_h as f32 / face.height() as f32);
        let (w, h) = (
            ((face.width() as f32 * scale) as u32).max(1),
            ((face.height() as f32 * scale) as u32).max(1),
        );
        let resized = image::imageops::resize(face, w, h, image::imageops::FilterType::Triangle);
        let x = col * cell_w + (cell_w - w) / 2;
        let y = row * cell_h + (cell_h - h) / 2;
        image::imageops::replace(&mut canvas, &resized, i64::from(x), i64::from(y));
    }
    canvas
}

/// Crops a frame region (clamped) for a crops message.
pub fn crop_region(
    frame: &RgbImage,
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
) -> (RgbImage, [f32; 4]) {
    let (fw, fh) = (frame.width() as f32, frame.height() as f32);
    let l = left.clamp(0.0, fw - 1.0).floor();
    let t = top.clamp(0.0, fh - 1.0).floor();
    let r = right.clamp(l + 1.0, fw).ceil();
    let b = bottom.clamp(t + 1.0, fh).ceil();
    let crop = image::imageops::crop_imm(frame, l as u32, t as u32, (r - l) as u32, (b - t) as u32)
        .to_image();
    (crop, [l, t, r - l, b - t])
}

/// Turns an image into a [`DynamicImage`] (for callers that need one).
pub fn dynamic(image: RgbImage) -> DynamicImage {
    DynamicImage::ImageRgb8(image)
}
