// Roles in a real browser, on `ddfr serve` with DDFR_API_TOKEN: a returning session (cookie)
// goes straight to the live view with "Log out" shown after a reload; an operator key (made
// over the REST API) sees people read-only and no Keys link; the admin creates a key on the
// Keys page, sees its secret once, a recognizer key's browser gets only the live view, and
// revoking the key closes that browser's /ws (1008) and sends it to the login page saying why;
// the Privacy page shows GET /api/privacy/policy to a browser without any login.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import {
  SCREENSHOTS,
  skipReason,
  ddfrBinary,
  photo,
  startServer,
  launch,
  stats,
  rest,
} from "./harness.mjs";

const skip = skipReason() ?? (ddfrBinary() ? null : "no ddfr binary (cargo build --release -p ddfr)");
if (skip) console.log(`SKIPPED: ${skip}`);

const TOKEN = `ddfr-test-${randomBytes(24).toString("hex")}`;
const PERSON = { name: "Katy", surname: "Perry", birthday: "1984-10-25", relationship: "collega", role: "guest" };
const ENROLL_PHOTO = "katy_perry/katy_perry_01.jpg";
const PHONE = { width: 390, height: 844 };

let server;
let personId;

/** One REST call, as a script would make it; `token` defaults to the admin token. */
const api = (method, path, body, token = TOKEN) => rest(server.base, token, method, path, body);

/** Logs the page in with `token` on the login page and waits for the live view. */
async function login(page, token) {
  await page.goto(`${server.base}/`);
  await page.waitForSelector("#login-form #token");
  await page.fill("#token", token);
  await page.click("#login-form button[type=submit]");
  await page.waitForFunction(() => location.hash === "#/live");
}

/** Whether the page is wider than the viewport (horizontal overflow). */
async function overflows(page) {
  return page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
}

before(async () => {
  if (skip) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startServer({ DDFR_API_TOKEN: TOKEN });
  const person = await api("POST", "/api/persons", PERSON);
  personId = person.id;
  const form = new FormData();
  form.append("image", new Blob([readFileSync(photo(ENROLL_PHOTO))], { type: "image/jpeg" }), basename(ENROLL_PHOTO));
  await api("POST", `/api/persons/${person.id}/faces`, form);
});

after(async () => {
  if (server) await server.stop();
});

test("a returning session goes straight to the live view with Log out shown", { skip: skip ?? false }, async () => {
  const { browser, page, errors } = await launch(null);
  try {
    await login(page, TOKEN);
    await page.waitForSelector("#logout", { state: "visible" });
    await page.reload();
    // After the reload the app asks /api/session: the cookie is valid, so no login page.
    await page.waitForSelector("#logout", { state: "visible" });
    await page.waitForSelector("#nav-keys", { state: "visible" });
    assert.equal(await page.evaluate(() => location.hash), "#/live");
    assert.equal(await page.isVisible("#login-form"), false);
    // Logging out takes the session away: the next load asks for a login again.
    await page.click("#logout");
    await page.waitForSelector("#login-form #token");
    await page.reload();
    await page.waitForSelector("#login-form #token");
    assert.equal(await page.isVisible("#logout"), false);
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await browser.close();
  }
});

test("an operator key sees people read-only and no Keys link", { skip: skip ?? false }, async () => {
  const { secret } = await api("POST", "/api/keys", { name: "reception desk", role: "operator" });
  const { browser, page, errors } = await launch(null);
  try {
    await login(page, secret);
    await page.waitForSelector("#nav-people", { state: "visible" });
    assert.equal(await page.isVisible("#nav-keys"), false, "no Keys link for an operator");
    assert.match(await page.textContent("#session-role"), /operator/);
    await page.click("#nav-people");
    await page.waitForSelector(`#people-list a[data-person-id="${personId}"]`);
    assert.equal(await page.$("#new-person"), null, "no New person for an operator");
    await page.click(`#people-list a[data-person-id="${personId}"]`);
    await page.waitForSelector("#person-title");
    await page.waitForSelector("#face-grid li[data-face-id] img");
    for (const control of ["#save-person", "#delete-person", "#face-upload", "#capture-face", "#privacy-section", "#export-person", "#withdraw-consent"]) {
      assert.equal(await page.$(control), null, `${control} is not shown to an operator`);
    }
    assert.equal(await page.$$eval("#face-grid button", (b) => b.length), 0, "no face delete buttons");
    assert.ok(await page.$eval("#f-name", (el) => el.disabled), "the fields are read-only");
    assert.equal(await page.inputValue("#f-name"), PERSON.name);
    await page.screenshot({ path: join(SCREENSHOTS, "operator-people.png") });
    // The Keys page by hand: a plain message, not a raw 403.
    await page.evaluate(() => (location.hash = "#/keys"));
    await page.waitForSelector("#not-allowed");
    assert.match(await page.textContent("#not-allowed"), /only an admin/i);
    await page.evaluate(() => (location.hash = "#/people/new"));
    await page.waitForFunction(() => /add people/.test(document.querySelector("#not-allowed")?.textContent ?? ""));
    assert.equal(await page.$("#person-form"), null, "no person form for an operator");
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await browser.close();
  }
});

test("the admin creates a key on the Keys page, sees its secret once, and revoking it logs its browser out", { skip: skip ?? false }, async () => {
  const admin = await launch(null);
  const kiosk = await launch(null);
  try {
    const page = admin.page;
    await admin.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.base });
    await login(page, TOKEN);
    await page.click("#nav-keys");
    await page.waitForSelector("#key-form #f-name");
    await page.fill("#f-name", "front door camera");
    await page.selectOption("#f-role", "recognizer");
    await page.fill("#f-expires_in_days", "30");
    await page.click("#create-key");
    await page.waitForSelector("#key-secret", { state: "visible" });
    const secret = await page.inputValue("#key-secret-value");
    assert.match(secret, /^ddfr_[0-9a-f]{64}$/);
    assert.match(await page.textContent("#key-secret-note"), /shown once/i);
    await page.click("#copy-secret");
    await page.waitForFunction(() => document.querySelector("#copy-status")?.textContent.length > 0);
    assert.match(await page.textContent("#copy-status"), /copied/i);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
    const row = page.locator("#keys-list tr", { hasText: "front door camera" });
    await row.waitFor();
    assert.match(await row.locator(".key-role").textContent(), /recognizer/);
    assert.equal(await row.getAttribute("data-status"), "active");
    assert.ok(!(await row.textContent()).includes("never"), "the expiry date is listed");
    const keys = await api("GET", "/api/keys");
    const created = keys.items.find((k) => k.name === "front door camera");
    assert.ok(created?.expires_at, JSON.stringify(keys));
    assert.equal((await api("GET", "/api/session", null, secret)).role, "recognizer");
    await page.screenshot({ path: join(SCREENSHOTS, "keys.png"), fullPage: true });

    // Shown once: hidden on request, and nowhere on the page after a reload.
    await page.click("#hide-secret");
    await page.waitForSelector("#key-secret", { state: "hidden" });
    await page.reload();
    await page.waitForSelector(`#keys-list tr[data-key-id="${created.id}"]`);
    assert.ok(!(await page.content()).includes(secret), "the secret is gone after a reload");
    await page.setViewportSize({ width: 390, height: 844 });
    assert.equal(await overflows(page), false, "the Keys page fits a phone");

    // The recognizer key's browser: only the live view.
    await login(kiosk.page, secret);
    await kiosk.page.waitForFunction(() => document.querySelector("#stats")?.dataset.state === "connected");
    for (const link of ["#nav-people", "#nav-visitors", "#nav-keys"]) {
      assert.equal(await kiosk.page.isVisible(link), false, `${link} hidden for a recognizer`);
    }
    assert.ok(await kiosk.page.isVisible("#nav-privacy"), "Privacy stays linked");
    await kiosk.page.evaluate(() => (location.hash = "#/people"));
    await kiosk.page.waitForSelector("#not-allowed");
    assert.match(await kiosk.page.textContent("#not-allowed"), /may only recognize/i);
    await kiosk.page.screenshot({ path: join(SCREENSHOTS, "recognizer-people.png") });
    await kiosk.page.evaluate(() => (location.hash = "#/live"));
    await kiosk.page.waitForFunction(() => document.querySelector("#stats")?.dataset.state === "connected");

    // Revoke in two presses; the kiosk's /ws is closed with 1008 and it lands on the login page.
    await page.setViewportSize({ width: 1280, height: 900 });
    const revoke = page.locator(`#revoke-${created.id}`);
    await revoke.click();
    assert.match(await revoke.textContent(), /press again/i);
    assert.equal((await api("GET", "/api/keys")).items.find((k) => k.id === created.id).revoked_at, null, "one press revokes nothing");
    await revoke.click();
    await page.waitForSelector(`#keys-list tr[data-key-id="${created.id}"][data-status="revoked"]`);
    await kiosk.page.waitForFunction(() => location.hash === "#/login");
    await kiosk.page.waitForSelector("#login-reason", { state: "visible" });
    assert.match(await kiosk.page.textContent("#login-reason"), /revoked or has expired/);
    assert.equal(await kiosk.page.isVisible("#logout"), false);
    assert.equal((await stats(kiosk.page)).state, "disconnected", "no reconnect loop");
    assert.deepEqual(admin.errors, [], "no uncaught errors in the admin page");
    assert.deepEqual(kiosk.errors, [], "no uncaught errors in the kiosk page");
  } finally {
    await admin.browser.close();
    await kiosk.browser.close();
  }
});

test("the Privacy page shows the policy, without a login", { skip: skip ?? false }, async () => {
  const policy = await (await fetch(`${server.base}/api/privacy/policy`)).json();
  const { browser, page, errors } = await launch(null, PHONE);
  try {
    await page.goto(`${server.base}/#/privacy`);
    await page.waitForSelector("#policy-version");
    assert.equal(await page.textContent("#policy-version"), policy.notice_version);
    assert.equal(await page.textContent("#policy-person-retention"), policy.person_retention);
    assert.equal(await page.$$eval("#policy-stored li", (l) => l.length), policy.stored.length);
    assert.equal(await page.$$eval("#policy-never-stored li", (l) => l.length), policy.never_stored.length);
    assert.ok(policy.never_stored.length > 0);
    assert.match(await page.textContent("#policy-consent"), /not required/i);
    assert.equal(await overflows(page), false, "the Privacy page fits a phone");
    await page.screenshot({ path: join(SCREENSHOTS, "privacy.png"), fullPage: true });
    // The link is there on the login page too.
    await page.goto(`${server.base}/`);
    await page.waitForSelector("#login-form");
    assert.ok(await page.isVisible("#nav-privacy"));
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await browser.close();
  }
});
