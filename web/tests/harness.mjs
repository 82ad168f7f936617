// Test harness: builds fake-camera videos, starts `ddfr serve` or a plain static server, and
// launches Debian's chromium through playwright-core (no browser download).
//
// Robustness rules every test file gets from here: ports are picked by the kernel at run time
// (`--port 0`, the bound address read from the server's JSON log); every process started here
// (ddfr serve, chromium) and the temp dir are cleaned up on every exit path (normal end,
// exception, SIGINT/SIGTERM/SIGHUP); waits are generous because the machine may be loaded.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
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

/** Default wait for page actions and selectors: slow machines load a 17 MB wasm first. */
export const ACTION_TIMEOUT_MS = 90_000;
/** How long a server may take to load its models and answer /api/health. */
const HEALTH_TIMEOUT_MS = 180_000;

/**
 * Why the browser tests cannot run here, or null. In CI (`CI` set) a missing build, browser or
 * fixture is a broken setup: it throws instead of letting the tests print SKIPPED.
 */
export function skipReason() {
  const reason = missingForBrowserTests();
  const ci = process.env.CI && process.env.CI !== "false";
  if (reason && ci) throw new Error(`CI is set but the browser tests cannot run: ${reason}`);
  return reason;
}

function missingForBrowserTests() {
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

// One temp dir per test file (videos, data dirs), under $DDFR_WEB_TMP when scripts/test-web
// gives one (it kills anything still running from there when it exits).
const tmpParent = process.env.DDFR_WEB_TMP ?? tmpdir();
mkdirSync(tmpParent, { recursive: true });
const tmp = mkdtempSync(join(tmpParent, "ddfr-web-test-"));
export const TMP = tmp;

// Every `ddfr serve` started here, so that no exit path leaves one running (playwright does the
// same for the browsers it launches).
const children = new Set();
function killChildren() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  children.clear();
}
process.on("exit", () => {
  killChildren();
  // playwright kills the browsers it launched in its own exit handler; the temp dir goes last.
  rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(signal, () => {
    killChildren();
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[signal]));
  });
}

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

/** Resolves with the first stdout line of `child` for which `pick` returns a value. */
function waitForLine(child, pick, what) {
  return new Promise((ok, fail) => {
    let buffered = "";
    const onData = (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const value = pick(line);
        if (value !== undefined) {
          child.stdout.off("data", onData);
          child.off("exit", onExit);
          ok(value);
          return;
        }
      }
    };
    const onExit = (code, signal) => fail(new Error(`ddfr serve exited (${code ?? signal}) before ${what}`));
    child.stdout.on("data", onData);
    child.once("exit", onExit);
  });
}

async function waitHealthy(base, child, timeoutMs = HEALTH_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`ddfr serve exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${base}/api/health`, { signal: AbortSignal.timeout(5000) });
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`ddfr serve did not become healthy within ${timeoutMs / 1000} s`);
}

/**
 * Starts `ddfr serve` with a fresh data dir on a port the kernel picks (`--port 0`) and waits
 * until it is healthy. `env` is added to the server's environment; `host` is the bind address
 * (a non-loopback one such as 0.0.0.0 needs a token). The server's stdout and stderr are
 * kept (`output()`), and warnings and errors are echoed to the test's stderr.
 */
export async function startServer(env = {}, { host = "127.0.0.1" } = {}) {
  const bin = ddfrBinary();
  if (!bin) throw new Error("no ddfr binary: build it with cargo build --release -p ddfr");
  const dataDir = mkdtempSync(join(tmp, "data-"));
  const child = spawn(
    bin,
    ["serve", "--host", host, "--port", "0", "--log-format", "json", "--data-dir", dataDir, "--web-dir", DIST],
    {
      env: {
        ...process.env,
        RUST_LOG: "warn,ddfr=info",
        DDFR_MODELS_DIR: process.env.DDFR_MODELS_DIR ?? join(ROOT, "models"),
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.add(child);
  child.once("exit", () => children.delete(child));
  let output = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      output += chunk;
      for (const line of chunk.split("\n")) {
        if (/"level":"(WARN|ERROR)"|^(?!\{)\S/.test(line)) process.stderr.write(`ddfr serve: ${line}\n`);
      }
    });
  }
  const stop = () =>
    new Promise((ok) => {
      if (child.exitCode !== null || child.signalCode !== null) return ok();
      const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", () => {
        clearTimeout(force);
        ok();
      });
      child.kill("SIGTERM");
    });
  try {
    const address = await waitForLine(
      child,
      (line) => {
        try {
          const event = JSON.parse(line);
          return event.fields?.message === "listening" ? event.fields.addr : undefined;
        } catch {
          return undefined;
        }
      },
      "it logged its address",
    );
    const port = Number(address.slice(address.lastIndexOf(":") + 1));
    const base = `http://127.0.0.1:${port}`;
    await waitHealthy(base, child);
    return { base, port, stop, output: () => output };
  } catch (error) {
    await stop();
    throw new Error(`${error.message}\n${output}`);
  }
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
  return {
    base,
    stop: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(ok);
      }),
  };
}

/** Headless chromium whose camera plays `video`, with `extraArgs` on its command line. */
export async function launch(video, viewport = { width: 1280, height: 900 }, extraArgs = []) {
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    // A loaded machine must not make chromium throttle the page's timers and animation frames.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ];
  if (video) args.push(`--use-file-for-fake-video-capture=${video}`);
  args.push(...extraArgs);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args, headless: true, timeout: HEALTH_TIMEOUT_MS });
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  return { browser, context, page, errors };
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

/**
 * One REST call with a bearer token, as a script (not the browser) would make it: asserts a 2xx
 * reply and returns its JSON (`null` for an empty body). `body` may be an object (sent as JSON)
 * or a FormData.
 */
export async function rest(base, token, method, path, body) {
  const init = { method, headers: { authorization: `Bearer ${token}` } };
  if (body instanceof FormData) init.body = body;
  else if (body) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
