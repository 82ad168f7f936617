// Recurring unknown visitors in a real browser (Debian chromium, fake camera fed with test
// photos), against a `ddfr serve` with DDFR_UNKNOWN_VISITORS on: a stranger gets a "Visitor"
// label in the live view, appears on the Visitors page with its chip, is promoted to a person
// through the UI (validation messages beside the fields first) and is then named in the live
// view with the confidence hint; another visitor is forgotten with the keyboard.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { SCREENSHOTS, skipReason, ddfrBinary, makeVideo, startServer, launch } from "./harness.mjs";

const skip = skipReason() ?? (ddfrBinary() ? null : "no ddfr binary (cargo build --release -p ddfr)");
if (skip) console.log(`SKIPPED: ${skip}`);

// Waits are generous: a loaded 2-core machine compiles the 18 MB wasm and runs the models slowly.
const WAIT_MS = 90_000;
const PROMOTED = { name: "Katy", surname: "Perry", birthday: "1984-10-25", relationship: "amico" };
const PROMOTED_PHOTO = "katy_perry/katy_perry_01.jpg";
const FORGOTTEN_PHOTO = "guido_van_rossum/guido_van_rossum_01.jpg";
const CODE = /^Visitor [0-9A-HJKMNP-TV-Z]{4}$/;

let server;
let videos;
let visitorId;
let personId;

before(async () => {
  if (skip) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  videos = {
    promoted: makeVideo("visitor-promoted", [PROMOTED_PHOTO], 2),
    forgotten: makeVideo("visitor-forgotten", [FORGOTTEN_PHOTO], 2),
  };
  server = await startServer({ DDFR_UNKNOWN_VISITORS: "true" });
});

after(async () => {
  if (server) await server.stop();
});

async function withBrowser(video, fn, viewport) {
  const { browser, page, errors } = await launch(video, viewport);
  try {
    await fn(page);
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await browser.close();
  }
}

async function api(path, init) {
  const response = await fetch(`${server.base}${path}`, init);
  assert.ok(response.ok, `${path}: HTTP ${response.status}`);
  return response.status === 204 ? null : response.json();
}

/** Waits for the live view to list a recurring visitor and returns its entry. */
async function waitForVisitorLabel(page) {
  const handle = await page.waitForFunction(
    () => {
      const li = document.querySelector('#face-list li[data-kind="unknown"][data-unknown-id]');
      return li && { id: Number(li.dataset.unknownId), title: li.querySelector(".who").textContent, text: li.textContent, track: li.dataset.trackId };
    },
    null,
    { timeout: WAIT_MS },
  );
  return handle.jsonValue();
}

/** Waits until the stats show a frame rate (a full one-second window of answers), for screenshots. */
async function waitForFps(page) {
  await page.waitForFunction(() => Number(document.querySelector("#stats")?.dataset.fps) > 0, null, { timeout: WAIT_MS });
}

test("a recurring stranger is shown as a Visitor in the live view", { skip: skip ?? false }, async () => {
  await withBrowser(videos.promoted, async (page) => {
    await page.goto(`${server.base}/#/live`);
    const label = await waitForVisitorLabel(page);
    assert.ok(label.id > 0, `an anonymous id (${JSON.stringify(label)})`);
    assert.match(label.title, CODE);
    assert.match(label.text, /not known yet/);
    assert.ok(Number(label.track) >= 0, "the track id is exposed");
    assert.ok(await page.isVisible("#nav-visitors"), "the Visitors link is shown when the server keeps visitors");
    visitorId = label.id;
    // The live view links the label to the visitor's card.
    await page.click("#face-list .visitor-link");
    await page.waitForSelector(`#visitor-${visitorId}.highlight`, { timeout: WAIT_MS });
    await page.goto(`${server.base}/#/live`);
    await waitForVisitorLabel(page);
    await waitForFps(page);
    await page.screenshot({ path: join(SCREENSHOTS, "live-visitor.png") });
  });
});

test("the Visitors page lists it with its chip; promoting it checks the fields and makes a guest", { skip: skip ?? false }, async () => {
  assert.ok(visitorId, "the live view saw the visitor first");
  await withBrowser(null, async (page) => {
    await page.goto(`${server.base}/#/visitors`);
    // The sighting is written in the background: the page refreshes by itself until it is there.
    const card = `#visitor-list li[data-visitor-id="${visitorId}"]`;
    await page.waitForSelector(card, { timeout: WAIT_MS });
    await page.waitForFunction((sel) => {
      const img = document.querySelector(`${sel} img`);
      return img && img.complete && img.naturalWidth > 0;
    }, card, { timeout: WAIT_MS });
    assert.match(await page.textContent(`${card} h2`), CODE);
    assert.ok(Number(await page.getAttribute(`${card} .sightings`, "data-sightings")) >= 1);
    assert.equal(await page.locator(`${card} time`).count(), 3, "first seen, last seen, kept until");
    await page.screenshot({ path: join(SCREENSHOTS, "visitors.png"), fullPage: true });

    // Keyboard: the button opens the form and focuses its first field.
    await page.focus(`#promote-${visitorId}`);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#promote-form");
    assert.equal(await page.evaluate(() => document.activeElement.id), "f-name");
    assert.equal(await page.getAttribute(`#promote-${visitorId}`, "aria-expanded"), "true");
    // The server's validation messages appear beside the fields.
    await page.keyboard.type(PROMOTED.name);
    await page.click("#promote-save");
    await page.waitForFunction(() => document.querySelector("#err-surname").textContent.length > 0, null, { timeout: WAIT_MS });
    assert.ok((await page.textContent("#err-birthday")).length > 0, "birthday message shown");
    assert.equal(await page.textContent("#err-name"), "", "no message for a valid field");
    assert.equal(await page.getAttribute("#f-surname", "aria-invalid"), "true");
    await page.screenshot({ path: join(SCREENSHOTS, "visitor-promote.png"), fullPage: true });

    await page.fill("#f-surname", PROMOTED.surname);
    await page.fill("#f-birthday", PROMOTED.birthday);
    await page.selectOption("#f-relationship", PROMOTED.relationship);
    await page.click("#promote-save");
    await page.waitForFunction(() => /^#\/people\/\d+$/.test(location.hash), null, { timeout: WAIT_MS });
    personId = Number(page.url().split("/").pop());
    await page.waitForSelector("#person-title");
    assert.equal(await page.textContent("#person-title"), `${PROMOTED.name} ${PROMOTED.surname}`);
    assert.equal(await page.inputValue("#f-role"), "guest");
    await page.waitForFunction(() => document.querySelectorAll("#face-grid img").length >= 1, null, { timeout: WAIT_MS });
  });
  const unknowns = await api("/api/unknowns");
  assert.ok(!unknowns.items.some((v) => v.id === visitorId), "the promoted visitor is no longer listed");
  const person = await api(`/api/persons/${personId}`);
  assert.equal(person.role, "guest");
  assert.ok(person.faces >= 1, "the visitor's chips became face samples");
});

test("the live view names the promoted visitor, with a confidence hint", { skip: skip ?? false }, async () => {
  assert.ok(personId, "the visitor was promoted first");
  await withBrowser(videos.promoted, async (page) => {
    await page.goto(`${server.base}/#/live`);
    const name = `${PROMOTED.name} ${PROMOTED.surname}`;
    const entry = await (await page.waitForFunction(
      (n) => {
        const li = [...document.querySelectorAll('#face-list li[data-kind="known"]')].find((l) => l.textContent.includes(n));
        const hint = li?.querySelector(".hint");
        return li && hint && {
          text: li.textContent, hint: hint.textContent, tooltip: hint.title, hintClass: hint.className,
          details: li.querySelector(".details")?.textContent, similarity: Number(li.dataset.similarity),
          far: Number(li.dataset.far), unknownId: li.dataset.unknownId ?? null,
        };
      },
      name,
      { timeout: WAIT_MS },
    )).jsonValue();
    assert.match(entry.text, new RegExp(`${name} · \\d+ · ${PROMOTED.relationship} · guest`));
    assert.match(entry.hint, /match \d\.\d\d/);
    assert.ok(Math.abs(Number(entry.hint.match(/\d\.\d\d/)[0]) - entry.similarity) <= 0.005, `hint shows the similarity (${JSON.stringify(entry)})`);
    assert.ok(entry.far >= 0 && entry.far <= 1, "the false-accept estimate is exposed");
    assert.match(entry.details, /other people would match this closely/);
    assert.equal(entry.tooltip, entry.details, "the hint's tooltip explains it");
    assert.match(entry.hintClass, /\b(sure|likely|unsure)\b/);
    assert.equal(entry.unknownId, null, "a named face has no visitor id");
    await waitForFps(page);
    await page.screenshot({ path: join(SCREENSHOTS, "live-named-visitor.png"), fullPage: true });
  });
});

test("phone-sized Visitors page, and forgetting a visitor with the keyboard", { skip: skip ?? false }, async () => {
  let forgotten;
  await withBrowser(videos.forgotten, async (page) => {
    await page.goto(`${server.base}/#/live`);
    forgotten = (await waitForVisitorLabel(page)).id;
    assert.notEqual(forgotten, visitorId, "another stranger is another visitor");
    await waitForFps(page);
    let overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `live view: no horizontal scrolling (${overflow}px)`);
    await page.screenshot({ path: join(SCREENSHOTS, "phone-live-visitor.png"), fullPage: true });
    await page.goto(`${server.base}/#/visitors`);
    const card = `#visitor-list li[data-visitor-id="${forgotten}"]`;
    await page.waitForSelector(card, { timeout: WAIT_MS });
    await page.waitForFunction((sel) => document.querySelector(`${sel} img`)?.naturalWidth > 0, card, { timeout: WAIT_MS });
    overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `Visitors page: no horizontal scrolling (${overflow}px)`);
    await page.screenshot({ path: join(SCREENSHOTS, "phone-visitors.png"), fullPage: true });
    // Two presses, like deleting a person.
    await page.focus(`#forget-${forgotten}`);
    await page.keyboard.press("Enter");
    assert.match(await page.textContent(`#forget-${forgotten}`), /again/);
    await page.keyboard.press("Enter");
    await page.waitForSelector(card, { state: "detached", timeout: WAIT_MS });
  }, { width: 390, height: 844 });
  const unknowns = await api("/api/unknowns");
  assert.ok(!unknowns.items.some((v) => v.id === forgotten), "the forgotten visitor is gone from the server");
});
