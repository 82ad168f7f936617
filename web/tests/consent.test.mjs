// Consent in a real browser, on `ddfr serve` with DDFR_REQUIRE_CONSENT=true (admin, loopback):
// adding a photo before any consent record is refused with a message pointing at the consent
// form and nothing is stored; recording consent on the person page lets the same photo in; the
// retention date is set from the page; the export link downloads the ZIP; withdrawing consent
// (two presses) deletes the person for good.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SCREENSHOTS, skipReason, ddfrBinary, photo, startServer, launch } from "./harness.mjs";

const skip = skipReason() ?? (ddfrBinary() ? null : "no ddfr binary (cargo build --release -p ddfr)");
if (skip) console.log(`SKIPPED: ${skip}`);

const PERSON = { name: "Ada", surname: "Lovelace", birthday: "1990-12-10", relationship: "amico", role: "guest" };
const PHOTO = "katy_perry/katy_perry_02.jpg";

let server;

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(`${server.base}${path}`, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

before(async () => {
  if (skip) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  server = await startServer({ DDFR_REQUIRE_CONSENT: "true" });
});

after(async () => {
  if (server) await server.stop();
});

test("consent: upload refused with a pointer to the form, consent recorded, upload accepted, export, withdraw deletes", { skip: skip ?? false }, async () => {
  const created = await api("POST", "/api/persons", PERSON);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const { browser, page, errors } = await launch(null);
  try {
    await page.goto(`${server.base}/#/people/${id}`);
    await page.waitForSelector("#person-title");
    await page.waitForSelector("#privacy-section #consent-form");
    await page.waitForSelector('#consent-list[data-count="0"]');

    // Before consent: refused, with the way forward.
    await page.setInputFiles("#face-upload", [photo(PHOTO)]);
    await page.waitForSelector('#upload-results li[data-outcome="rejected"]');
    assert.match(await page.textContent("#upload-results"), /consent record/i);
    await page.waitForSelector("#consent-hint", { state: "visible" });
    assert.match(await page.textContent("#upload-status"), /Record consent/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), "f-subject", "focus moved to the consent form");
    assert.equal((await api("GET", `/api/persons/${id}/faces`)).body.length, 0, "nothing stored");

    // Record consent: the notice version comes from the policy.
    const policy = (await api("GET", "/api/privacy/policy")).body;
    assert.equal(policy.consent_required, true);
    await page.waitForFunction((v) => document.querySelector("#f-notice_version")?.value === v, policy.notice_version);
    await page.selectOption("#f-method", "electronic");
    await page.click("#save-consent");
    // recorded_by is required: the server's message shows beside the field.
    await page.waitForFunction(() => document.querySelector("#err-recorded_by")?.textContent.length > 0);
    await page.fill("#f-recorded_by", "test admin");
    await page.click("#save-consent");
    await page.waitForSelector('#consent-list[data-count="1"] li[data-consent-id]');
    assert.equal(await page.textContent("#consent-status"), "Consent recorded.");
    assert.equal(await page.isVisible("#consent-hint"), false, "the pointer goes once consent is recorded");
    assert.match(await page.textContent("#consent-list"), /Ada Lovelace · electronic/);
    const records = (await api("GET", `/api/persons/${id}/consent`)).body;
    assert.equal(records.length, 1);
    assert.equal(records[0].recorded_by, "test admin");
    assert.equal(records[0].notice_version, policy.notice_version);

    // Now the same photo goes in.
    await page.setInputFiles("#face-upload", [photo(PHOTO)]);
    await page.waitForSelector('#upload-results li[data-outcome="accepted"]');
    await page.waitForSelector("#face-grid li[data-face-id]");
    assert.equal(await page.textContent("#upload-status"), "", "no stale upload status");
    assert.equal((await api("GET", `/api/persons/${id}/faces`)).body.length, 1);

    // Retention date, set from the page.
    const next = new Date(Date.now() + 400 * 86_400_000).toISOString().slice(0, 10);
    await page.fill("#f-retain_until", next);
    await page.click("#save-retention");
    await page.waitForFunction(() => document.querySelector("#retention-status")?.textContent === "Saved.");
    assert.equal((await api("GET", `/api/persons/${id}`)).body.retain_until, next);
    assert.equal(await page.getAttribute("#retain-current", "data-retain-until"), next);
    assert.match(await page.textContent("#retain-current"), new RegExp(next));
    // Back to the server's rule: the date becomes the rule's again (creation + retention days).
    await page.evaluate(() => (document.querySelector("#retention-status").textContent = ""));
    await page.click("#clear-retention");
    await page.waitForFunction(() => document.querySelector("#retention-status")?.textContent === "Saved.");
    const ruled = (await api("GET", `/api/persons/${id}`)).body.retain_until;
    assert.notEqual(ruled, next);
    assert.equal(await page.getAttribute("#retain-current", "data-retain-until"), ruled);
    await page.fill("#f-retain_until", next);
    await page.click("#save-retention");
    await page.waitForFunction((v) => document.querySelector("#retain-current")?.dataset.retainUntil === v, next);
    await page.locator("#privacy-section").scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SCREENSHOTS, "person-consent.png"), fullPage: true });

    // The export link downloads the ZIP.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-person")]);
    const zip = readFileSync(await download.path());
    assert.equal(zip.subarray(0, 2).toString("latin1"), "PK", "a ZIP archive");
    assert.ok(zip.includes(Buffer.from("consent.json")), "the archive holds consent.json");

    // Withdraw: two presses, then the person is gone for good.
    await page.click("#withdraw-consent");
    assert.match(await page.textContent("#withdraw-consent"), /press again/i);
    assert.equal((await api("GET", `/api/persons/${id}`)).status, 200, "one press deletes nothing");
    await page.click("#withdraw-consent");
    await page.waitForFunction(() => location.hash === "#/people");
    assert.equal((await api("GET", `/api/persons/${id}`)).status, 404);
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await browser.close();
  }
});
