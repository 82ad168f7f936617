// Login in a real browser: `ddfr serve` with DDFR_API_TOKEN on a non-loopback bind (0.0.0.0),
// the page asks for the token, a wrong one is refused with a message, the right one logs in
// and the live view names a person enrolled over the REST API. The token must never show up
// in a URL the page loaded (every request, WebSocket and navigation is recorded), in
// localStorage/sessionStorage/document.cookie/the DOM/the console, or in the server's output.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import {
  SCREENSHOTS,
  skipReason,
  ddfrBinary,
  makeVideo,
  photo,
  startServer,
  launch,
  stats,
  rest,
} from "./harness.mjs";

const skip = skipReason() ?? (ddfrBinary() ? null : "no ddfr binary (cargo build --release -p ddfr)");
if (skip) console.log(`SKIPPED: ${skip}`);

const TOKEN = `ddfr-test-${randomBytes(24).toString("hex")}`;
const WRONG_TOKEN = `wrong-${randomBytes(24).toString("hex")}`;
const PERSON = { name: "Katy", surname: "Perry", birthday: "1984-10-25", relationship: "collega", role: "guest" };
const ENROLL_PHOTOS = ["katy_perry/katy_perry_01.jpg", "katy_perry/katy_perry_02.jpg"];
const LIVE_PHOTO = "katy_perry/katy_perry_03.jpg";
const LABEL_TIMEOUT_MS = 90_000;

let server;
let video;

/** One REST call with the bearer token, as a script (not the browser) would make it. */
const api = (method, path, body) => rest(server.base, TOKEN, method, path, body);

before(async () => {
  if (skip) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  video = makeVideo("login-person", [LIVE_PHOTO], 2);
  // 0.0.0.0 is a non-loopback bind: the server must insist on the token there.
  server = await startServer({ DDFR_API_TOKEN: TOKEN, RUST_LOG: "debug" }, { host: "0.0.0.0" });
  const person = await api("POST", "/api/persons", PERSON);
  for (const file of ENROLL_PHOTOS) {
    const form = new FormData();
    form.append("image", new Blob([readFileSync(photo(file))], { type: "image/jpeg" }), basename(file));
    await api("POST", `/api/persons/${person.id}/faces`, form);
  }
});

after(async () => {
  if (server) await server.stop();
});

test("the server on a non-loopback bind refuses requests without the token", { skip: skip ?? false }, async () => {
  assert.equal((await fetch(`${server.base}/api/persons`)).status, 401);
  const wrong = await fetch(`${server.base}/api/persons`, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } });
  assert.equal(wrong.status, 401);
  assert.equal((await fetch(`${server.base}/api/health`)).status, 200, "health needs no token");
});

test("login: a wrong token is refused, the right one opens the live view; the token leaks nowhere", { skip: skip ?? false }, async () => {
  const { browser, context, page, errors } = await launch(video);
  const urls = [];
  const consoleLines = [];
  context.on("request", (request) => urls.push(request.url()));
  page.on("websocket", (ws) => urls.push(ws.url()));
  page.on("framenavigated", (frame) => urls.push(frame.url()));
  page.on("console", (message) => consoleLines.push(message.text()));
  try {
    await page.goto(`${server.base}/`);
    await page.waitForSelector("#login-form #token");
    assert.equal(await page.evaluate(() => location.hash), "#/login");

    await page.fill("#token", WRONG_TOKEN);
    await page.press("#token", "Enter");
    await page.waitForFunction(() => document.querySelector("#login-error")?.textContent.length > 0);
    assert.match(await page.textContent("#login-error"), /wrong token/i);
    assert.equal(await page.inputValue("#token"), "", "the field is cleared after sending");
    assert.equal(await page.evaluate(() => location.hash), "#/login", "still on the login page");
    await page.screenshot({ path: join(SCREENSHOTS, "login.png") });

    await page.fill("#token", TOKEN);
    await page.click("#login-form button[type=submit]");
    await page.waitForFunction(() => location.hash === "#/live");
    await page.waitForFunction(
      (text) => [...document.querySelectorAll('#face-list li[data-kind="known"]')].some((li) => li.textContent.includes(text)),
      `${PERSON.name} ${PERSON.surname}`,
      { timeout: LABEL_TIMEOUT_MS },
    );
    const labels = await page.$$eval('#face-list li[data-kind="known"]', (lis) => lis.map((li) => li.textContent));
    assert.equal(labels.length, 1, JSON.stringify(labels));
    assert.match(labels[0], /collega/);
    assert.equal((await stats(page)).state, "connected");
    assert.ok(await page.isVisible("#logout"), "the Log out button is shown");

    // The session is an HttpOnly, SameSite=Strict cookie: invisible to the page's scripts.
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "ddfr_session");
    assert.ok(session, `a session cookie was set: ${cookies.map((c) => c.name)}`);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    const visible = await page.evaluate(() => ({
      cookie: document.cookie,
      local: JSON.stringify(Object.entries(localStorage)),
      session: JSON.stringify(Object.entries(sessionStorage)),
      dom: document.documentElement.outerHTML,
      tokenField: document.querySelector("#token")?.value ?? "",
    }));
    for (const [where, text] of Object.entries(visible)) {
      assert.ok(!text.includes(TOKEN), `the token is in ${where}`);
    }
    assert.ok(urls.length > 5, `requests were recorded: ${urls}`);
    assert.ok(urls.some((u) => u.startsWith("ws://") && u.endsWith("/ws")), `the live view opened /ws: ${urls}`);
    for (const url of urls) {
      for (const secret of [TOKEN, WRONG_TOKEN]) {
        assert.ok(!url.includes(secret) && !decodeURIComponent(url).includes(secret), `a token is in the URL ${url}`);
      }
    }
    for (const line of consoleLines) {
      assert.ok(!line.includes(TOKEN) && !line.includes(WRONG_TOKEN), `a token is in the console: ${line}`);
    }
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await browser.close();
  }
  // The server logged at debug level through all of this, and never the token.
  await server.stop();
  const output = server.output();
  assert.ok(output.includes('"listening"') && output.length > 1000, "the server's output was captured");
  assert.ok(!output.includes(TOKEN), "the token is in the server's stdout/stderr");
  assert.ok(!output.includes(WRONG_TOKEN), "the wrong token is in the server's stdout/stderr");
});
