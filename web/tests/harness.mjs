// Test harness: builds fake-camera videos, starts `ddfr serve` or a plain static server, and
// launches Debian's chromium through playwright-core (no browser download).
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DIST = join(ROOT, "web/dist");
export const TESTDATA = process.env.DDFR_TESTDATA ?? resolve(ROOT, "../shared/testdata");
export const SCREENSHOTS = join(ROOT, "docs/screenshots");
export const CHROMIUM = process.env.DDFR_CHROMIUM ?? "/usr/bin/chromium";
const PYTHON = process.env.DDFR_PYTHON ?? join(ROOT, ".cache/venv/bin/python");

/** Why the browser tests cannot run here, or null. */
export function skipReason() {
  if (!existsSync(join(DIST, "index.html"))) return "web/dist is not built (run trunk build --release)";
  if (!existsSync(join(TESTDATA, "faces"))) return `test data not found at ${TESTDATA}`;
  if (!existsSync(CHROMIUM)) return `no chromium at ${CHROMIUM} (run scripts/setup-web)`;
  if (!existsSync(PYTHON)) return `no python with Pillow at ${PYTHON} (run scripts/setup)`;
  return null;
}

/** The `ddfr` binary: $DDFR_BIN, else the newest target/{release,debug}/ddfr. */
export function ddfrBinary() {
  if (process.env.DDFR_BIN) return process.env.DDFR_BIN;
  const targets = [process.env.CARGO_TARGET_DIR, join(ROOT, "target")].filter(Boolean);
  const found = targets
    .flatMap((t) => ["release", "debug"].map((p) => join(t, p, "ddfr")))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return found[0] ?? null;
}

const tmp = mkdtempSync(join(tmpdir(), "ddfr-web-test-"));
export const TMP = tmp;

/** A 640x480 Y4M of `photos` (paths under faces/), each shown for `seconds`. */
export function makeVideo(name, photos, seconds = 2) {
  const out = join(tmp, `${name}.y4m`);
  const paths = photos.map((p) => join(TESTDATA, "faces", p));
  execFileSync(PYTHON, [join(ROOT, "web/tests/make_y4m.py"), out, "640", "480", String(30 * seconds), ...paths]);
  return out;
}

export function photo(path) {
  return join(TESTDATA, "faces", path);
}

async function freePort() {
  return new Promise((ok) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

async function waitHealthy(base, child, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`ddfr serve exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${base}/api/health`);
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("ddfr serve did not become healthy");
}

/** Starts `ddfr serve` on a free port with a fresh data dir. */
export async function startServer(env = {}) {
  const bin = ddfrBinary();
  if (!bin) throw new Error("no ddfr binary: build it with cargo build --release -p ddfr");
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmp, "data-"));
  const child = spawn(bin, ["serve", "--port", String(port), "--data-dir", dataDir, "--web-dir", DIST], {
    env: { ...process.env, RUST_LOG: "warn", DDFR_MODELS_DIR: process.env.DDFR_MODELS_DIR ?? join(ROOT, "models"), ...env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  await waitHealthy(base, child);
  return { base, stop: () => new Promise((ok) => { if (child.exitCode !== null) return ok(); child.once("exit", ok); child.kill("SIGTERM"); }) };
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".toml": "text/plain", ".onnx": "application/octet-stream" };

/** Serves web/dist alone: what a browser sees when the ddfr server is down but the page is cached or hosted elsewhere. */
export async function startStaticServer() {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path.startsWith("/api/") || path === "/ws") {
      res.writeHead(503).end();
      return;
    }
    const file = join(DIST, path === "/" ? "index.html" : path);
    if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { base, stop: () => new Promise((ok) => server.close(ok)) };
}

/** Headless chromium whose camera plays `video`. */
export async function launch(video, viewport = { width: 1280, height: 900 }) {
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
  ];
  if (video) args.push(`--use-file-for-fake-video-capture=${video}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args, headless: true });
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  return { browser, page, errors };
}

/** Reads the live view's stats as numbers. */
export async function stats(page) {
  return page.$eval("#stats", (el) => Object.fromEntries(Object.entries(el.dataset).map(([k, v]) => [k, isNaN(Number(v)) || v === "" ? v : Number(v)])));
}

/** Samples the stats over `ms` and returns frames/s, replies/s and bytes per sent frame. */
export async function measure(page, ms) {
  const a = await stats(page);
  const t0 = Date.now();
  await page.waitForTimeout(ms);
  const b = await stats(page);
  const seconds = (Date.now() - t0) / 1000;
  const per = (k) => (b[k] - a[k]) / seconds;
  const bytes = (f, k) => (b[f] - a[f] > 0 ? (b[k] - a[k]) / (b[f] - a[f]) : null);
  return {
    framesPerSecond: per("frames"),
    repliesPerSecond: per("replies"),
    cropsBytesPerFrame: bytes("cropsFrames", "cropsBytes"),
    fullBytesPerFrame: bytes("fullFrames", "fullBytes"),
    detectMs: b.detectMs,
    rttMs: b.rttMs,
  };
}
