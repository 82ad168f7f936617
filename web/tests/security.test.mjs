// The default server (loopback, no token) against hostile web pages in a real browser (issue 12):
// a page served by a second HTTP server on another port (another origin) tries a text/plain
// fetch, a form POST, a multipart upload, a consent withdrawal, a DELETE, a cross-origin read, a
// WebSocket to /ws and an <img> of a face crop; then DNS rebinding is simulated with a name
// mapped to 127.0.0.1 (Chromium's --host-resolver-rules). Every attempt must be refused by the
// server (the status each request really got is read from the browser's network events, even
// for opaque no-cors responses) and a dump of the store before and after must be equal. The
// ddfr app's own origin keeps working in the same browser.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { skipReason, ddfrBinary, photo, startServer, launch } from "./harness.mjs";

const skip = skipReason() ?? (ddfrBinary() ? null : "no ddfr binary (cargo build --release -p ddfr)");
if (skip) console.log(`SKIPPED: ${skip}`);

const REBIND = "rebind.test";
let server;
let attacker;
let browser;
let page;

/** A script's request (no Origin, no Fetch Metadata): what curl would do. */
async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(`${server.base}${path}`, init);
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Everything the attacks could change: persons, their faces, the audit log's length. */
async function dump() {
  const persons = await api("GET", "/api/persons?limit=1000");
  const faces = [];
  for (const p of persons.items) faces.push(await api("GET", `/api/persons/${p.id}/faces`));
  const audit = await api("GET", "/api/audit?limit=1000");
  return { persons, faces, audit: audit.items.length };
}

/** The attacker's page: every attack against `target`, results in window.results. */
function attackPage(target, personId, faceId) {
  const person = JSON.stringify({ name: "Mallory", surname: "Evil", birthday: "1990-01-01", relationship: "altro", role: "guest" });
  return `<!doctype html><meta charset="utf-8"><title>totally harmless</title>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="POST" enctype="text/plain" action="${target}/api/persons" target="sink">
  <input name='{"name":"Mallory","surname":"Form","birthday":"1990-01-01","relationship":"altro","role":"guest","x":"' value='"}'>
</form>
<script>
const T = ${JSON.stringify(target)};
async function attempt(init, url) {
  try { const r = await fetch(url, init); return r.type + ":" + r.status; } catch (e) { return "error:" + e.name; }
}
async function run() {
  const out = {};
  out.textPlain = await attempt({ method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body: ${JSON.stringify(person)} }, T + "/api/persons");
  out.withdraw = await attempt({ method: "POST", mode: "no-cors" }, T + "/api/persons/${personId}/consent/withdraw");
  const jpeg = await (await fetch("/photo.jpg")).blob();
  const form = new FormData();
  form.append("image", jpeg, "x.jpg");
  out.multipart = await attempt({ method: "POST", mode: "no-cors", body: form }, T + "/api/persons/${personId}/faces");
  out.corsRead = await attempt({}, T + "/api/persons");
  out.corsDelete = await attempt({ method: "DELETE" }, T + "/api/persons/${personId}");
  out.ws = await new Promise((done) => {
    const ws = new WebSocket(T.replace("http", "ws") + "/ws");
    ws.onopen = () => { done("open"); ws.close(); };
    ws.onerror = () => done("error");
    setTimeout(() => done("timeout"), 15000);
  });
  out.img = await new Promise((done) => {
    const img = new Image();
    img.onload = () => done("loaded");
    img.onerror = () => done("error");
    img.src = T + "/api/persons/${personId}/faces/${faceId}/crop";
  });
  document.getElementById("f").submit();
  await new Promise((r) => setTimeout(r, 1500));
  window.results = out;
}
run();
</script>`;
}

before(async () => {
  if (skip) return;
  server = await startServer();
  const created = await api("POST", "/api/persons", { name: "Ada", surname: "Lovelace", birthday: "1990-12-10", relationship: "famiglia", role: "user" });
  const form = new FormData();
  form.append("image", new Blob([readFileSync(photo("barack_obama/barack_obama_01.jpg"))], { type: "image/jpeg" }), "a.jpg");
  const face = await (await fetch(`${server.base}/api/persons/${created.id}/faces`, { method: "POST", body: form })).json();
  assert.ok(face.id, `enrollment: ${JSON.stringify(face)}`);
  server.person = created.id;
  server.face = face.id;
  attacker = createServer((req, res) => {
    if (req.url === "/photo.jpg") {
      res.writeHead(200, { "content-type": "image/jpeg" }).end(readFileSync(photo("elon_musk/elon_musk_01.jpg")));
      return;
    }
    res.writeHead(200, { "content-type": "text/html" }).end(attackPage(server.base, server.person, server.face));
  });
  await new Promise((ok) => attacker.listen(0, "127.0.0.1", ok));
  ({ browser, page } = await launch(null, undefined, [`--host-resolver-rules=MAP ${REBIND} 127.0.0.1`]));
});

after(async () => {
  await browser?.close();
  await new Promise((ok) => (attacker ? attacker.close(ok) : ok()));
  await server?.stop();
});

test("a page of another origin can neither write nor read, and nothing in the store changes", { skip: skip ?? false }, async () => {
  const before = await dump();
  const seen = [];
  page.on("response", (r) => {
    if (r.url().startsWith(server.base)) seen.push({ url: r.url().slice(server.base.length), method: r.request().method(), status: r.status() });
  });
  const attackerBase = `http://127.0.0.1:${attacker.address().port}`;
  await page.goto(`${attackerBase}/`);
  await page.waitForFunction(() => window.results, null, { timeout: 60_000 });
  const results = await page.evaluate(() => window.results);
  console.log("attack page saw:", JSON.stringify(results));
  console.log("server answered:", JSON.stringify(seen));
  // What the page could tell: no readable answer, no open socket, no image.
  assert.equal(results.corsRead, "error:TypeError");
  assert.equal(results.corsDelete, "error:TypeError");
  assert.equal(results.ws, "error");
  assert.equal(results.img, "error");
  // What the server really answered each request that reached it (opaque to the page).
  const status = (method, path) => seen.filter((s) => s.method === method && s.url === path).map((s) => s.status);
  for (const [method, path, what] of [
    ["POST", "/api/persons", "text/plain fetch and form POST"],
    ["POST", `/api/persons/${server.person}/consent/withdraw`, "consent withdrawal"],
    ["POST", `/api/persons/${server.person}/faces`, "multipart upload"],
  ]) {
    const got = status(method, path);
    assert.ok(got.length > 0, `${what}: never reached the server`);
    assert.ok(got.every((s) => s === 403), `${what}: ${got}`);
  }
  assert.equal(status("POST", "/api/persons").length, 2, "the fetch and the form POST");
  // The <img> of a crop: Chromium blocks the opaque answer (ORB) before the page's network
  // events show it, so the server's log says what it answered.
  const cropRefusals = server
    .output()
    .split("\n")
    .filter((line) => line.includes("refused a cross-site request") && line.includes(`/api/persons/${server.person}/faces/${server.face}/crop`));
  assert.equal(cropRefusals.length, 1, "the crop image request was not refused as cross-site");
  // The preflighted DELETE and the cross-origin read are refused before or by the browser.
  assert.ok(!seen.some((s) => s.method === "DELETE"), "a DELETE went through its preflight");
  const after = await dump();
  assert.deepEqual(after, before, "the store changed");
  const refused = (server.output().match(/refused a (request from a disallowed origin|cross-site request)/g) ?? []).length;
  assert.ok(refused >= 6, `${refused} refusals logged`);
});

test("DNS rebinding: a foreign name that resolves to 127.0.0.1 gets 421 and no data", { skip: skip ?? false }, async () => {
  const before = await dump();
  const rebound = `http://${REBIND}:${server.port}`;
  for (const path of ["/api/persons", `/api/persons/${server.person}/export`, "/"]) {
    const response = await page.goto(`${rebound}${path}`);
    assert.equal(response.status(), 421, `${path}: ${response.status()}`);
    const body = await response.text();
    assert.ok(!body.includes("Lovelace"), `${path} leaked a person: ${body}`);
    assert.match(body, /host_not_allowed/);
  }
  // The rebound page also cannot open /ws (its handshake names the foreign host).
  const ws = await page.evaluate(
    (url) => new Promise((done) => {
      const socket = new WebSocket(url);
      socket.onopen = () => done("open");
      socket.onerror = () => done("error");
      setTimeout(() => done("timeout"), 15000);
    }),
    `ws://${REBIND}:${server.port}/ws`,
  );
  assert.equal(ws, "error");
  assert.deepEqual(await dump(), before, "the store changed");
});

test("the app's own origin keeps working: localhost and 127.0.0.1 read, write and stream", { skip: skip ?? false }, async () => {
  for (const base of [server.base, `http://localhost:${server.port}`]) {
    await page.goto(`${base}/`);
    const outcome = await page.evaluate(async () => {
      const created = await fetch("/api/persons", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Grace", surname: "Hopper", birthday: "1906-12-09", relationship: "amico", role: "guest" }),
      });
      const person = await created.json();
      const removed = await fetch(`/api/persons/${person.id}`, { method: "DELETE" });
      const ws = await new Promise((done) => {
        const socket = new WebSocket(location.origin.replace("http", "ws") + "/ws");
        socket.onopen = () => { done("open"); socket.close(); };
        socket.onerror = () => done("error");
        setTimeout(() => done("timeout"), 15000);
      });
      return { created: created.status, removed: removed.status, ws };
    });
    assert.deepEqual(outcome, { created: 201, removed: 204, ws: "open" }, base);
  }
});
