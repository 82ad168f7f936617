// ddfr's browser app in a real browser (Debian chromium, fake camera fed with test photos):
// enrolment through the UI, live labels in crops and full-frame mode, strangers as Unknown,
// deletion turning the label back to Unknown, the offline demo, and measurements.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  SCREENSHOTS, TMP, skipReason, ddfrBinary, makeVideo, photo, startServer,
  startStaticServer, launch, stats, measure,
} from "./harness.mjs";

// The offline demo needs only the built app; everything else also needs `ddfr serve`.
const skipOffline = skipReason();
const skip = skipOffline ?? (ddfrBinary() ? null : "no ddfr binary (cargo build --release -p ddfr)");
if (skip) console.log(`SKIPPED: ${skip}`);

// The enrolled person and a stranger; the live video shows a different photo than the enrolled one.
const PERSON = { name: "Barack", surname: "Obama", relationship: "amico", role: "user" };
const ENROLL_PHOTOS = ["barack_obama/barack_obama_01.jpg", "barack_obama/barack_obama_02.jpg"];
const LIVE_PHOTO = "barack_obama/barack_obama_03.jpg";
const STRANGER_PHOTO = "elon_musk/elon_musk_01.jpg";
const NO_FACE_PHOTO = "none/skimage_coffee.png";
const LABEL_TIMEOUT_MS = 90_000;

const measurements = {};
let server;
let videos;
let personId;

before(async () => {
  if (skipOffline) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  videos = {
    person: makeVideo("person", [LIVE_PHOTO], 2),
    stranger: makeVideo("stranger", [STRANGER_PHOTO], 2),
    none: makeVideo("none", [NO_FACE_PHOTO], 2),
  };
  if (!skip) server = await startServer();
});

after(async () => {
  if (server) await server.stop();
  if (Object.keys(measurements).length) {
    writeFileSync(join(TMP, "measurements.json"), JSON.stringify(measurements, null, 2));
    console.log("MEASUREMENTS " + JSON.stringify(measurements));
  }
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

async function waitForLabel(page, kind, text) {
  const selector = `#face-list li[data-kind="${kind}"]`;
  await page.waitForFunction(
    ([sel, t]) => [...document.querySelectorAll(sel)].some((li) => !t || li.textContent.includes(t)),
    [selector, text],
    { timeout: LABEL_TIMEOUT_MS },
  );
  return page.$$eval(selector, (lis) => lis.map((li) => li.textContent));
}

test("offline demo boxes faces in the browser with no server", { skip: skipOffline ?? false }, async () => {
  const statics = await startStaticServer();
  try {
    await withBrowser(videos.person, async (page) => {
      await page.goto(`${statics.base}/`);
      const labels = await waitForLabel(page, "local");
      assert.equal(labels.length, 1, `one face boxed: ${labels}`);
      assert.equal((await stats(page)).state, "offline");
      await page.waitForTimeout(1500);
      measurements.offlineDetection = await measure(page, 5000);
      await page.screenshot({ path: join(SCREENSHOTS, "offline-demo.png") });
    });
  } finally {
    await statics.stop();
  }
});

test("enrol a person through the UI from photos", { skip: skip ?? false }, async () => {
  await withBrowser(videos.none, async (page) => {
    await page.goto(`${server.base}/#/people/new`);
    await page.waitForSelector("#person-form");
    // The server's validation messages appear beside the fields.
    await page.fill("#f-name", PERSON.name);
    await page.click("#save-person");
    await page.waitForFunction(() => document.querySelector("#err-surname").textContent.length > 0);
    assert.ok((await page.textContent("#err-birthday")).length > 0, "birthday message shown");
    await page.screenshot({ path: join(SCREENSHOTS, "person-validation.png") });

    await page.fill("#f-surname", PERSON.surname);
    await page.fill("#f-birthday", "1961-08-04");
    await page.selectOption("#f-relationship", PERSON.relationship);
    await page.selectOption("#f-role", PERSON.role);
    await page.click("#save-person");
    await page.waitForSelector("#face-upload");
    personId = Number(page.url().split("/").pop());
    assert.ok(personId > 0, `person page for the new id (${page.url()})`);

    // Several photos at once, plus one without a face, each with its own outcome.
    await page.setInputFiles("#face-upload", [...ENROLL_PHOTOS.map(photo), photo(NO_FACE_PHOTO)]);
    await page.waitForFunction((n) => document.querySelectorAll("#upload-results li").length === n, ENROLL_PHOTOS.length + 1, { timeout: 120_000 });
    const outcomes = await page.$$eval("#upload-results li", (lis) => lis.map((li) => [li.dataset.outcome, li.textContent]));
    assert.deepEqual(outcomes.map(([o]) => o), ["accepted", "accepted", "rejected"], JSON.stringify(outcomes));
    assert.match(outcomes[2][1], /no_face/);
    await page.waitForFunction((n) => document.querySelectorAll("#face-grid img").length === n, ENROLL_PHOTOS.length);
    await page.waitForFunction(() => [...document.querySelectorAll("#face-grid img")].every((img) => img.complete && img.naturalWidth > 0));
    await page.screenshot({ path: join(SCREENSHOTS, "person.png"), fullPage: true });

    await page.goto(`${server.base}/#/people`);
    await page.waitForSelector(`#people-list a[data-person-id="${personId}"]`);
    await page.fill("#search", "oba");
    await page.waitForSelector(`#people-list a[data-person-id="${personId}"]`);
    await page.fill("#search", "");
    await page.screenshot({ path: join(SCREENSHOTS, "people.png") });
  });
});

test("the live view names the enrolled person in crops mode", { skip: skip ?? false }, async () => {
  assert.ok(personId, "enrolment ran first");
  await withBrowser(videos.person, async (page) => {
    await page.goto(`${server.base}/#/live`);
    const labels = await waitForLabel(page, "known", `${PERSON.name} ${PERSON.surname}`);
    assert.equal(labels.length, 1);
    assert.match(labels[0], /amico/);
    assert.match(labels[0], /user/);
    const s = await stats(page);
    assert.equal(s.state, "connected");
    assert.equal(s.mode, "crops");
    await page.waitForTimeout(1500);
    measurements.cropsOneFace = await measure(page, 6000);
    await page.screenshot({ path: join(SCREENSHOTS, "live-crops.png") });
  });
});

test("the live view names the enrolled person in full-frame mode", { skip: skip ?? false }, async () => {
  await withBrowser(videos.person, async (page) => {
    await page.goto(`${server.base}/?mode=full#/live`);
    const labels = await waitForLabel(page, "known", `${PERSON.name} ${PERSON.surname}`);
    assert.equal(labels.length, 1);
    assert.equal((await stats(page)).mode, "full frames");
    await page.waitForTimeout(1500);
    measurements.fullFrameOneFace = await measure(page, 6000);
    await page.screenshot({ path: join(SCREENSHOTS, "live-full-frame.png") });
  });
});

test("a stranger is labelled Unknown and a face-less scene sends nothing", { skip: skip ?? false }, async () => {
  await withBrowser(videos.stranger, async (page) => {
    await page.goto(`${server.base}/#/live`);
    const labels = await waitForLabel(page, "unknown", "Unknown");
    assert.equal(labels.length, 1);
    await page.screenshot({ path: join(SCREENSHOTS, "live-unknown.png") });
  });
  await withBrowser(videos.none, async (page) => {
    await page.goto(`${server.base}/#/live`);
    // Until the in-browser detector has loaded (slow on a busy machine) the app sends full
    // frames; once it runs, a face-less scene must send nothing at all. The first crops-mode
    // frames come after any full frame in flight was answered (one message in flight).
    const cropsFramesAbove = (n) =>
      page.waitForFunction((m) => Number(document.querySelector("#stats")?.dataset.cropsFrames ?? 0) > m, n, { timeout: LABEL_TIMEOUT_MS });
    await page.waitForFunction(() => document.querySelector("#stats")?.dataset.detector === "ready", null, { timeout: LABEL_TIMEOUT_MS });
    await cropsFramesAbove(2);
    const before = await stats(page);
    await cropsFramesAbove(before.cropsFrames + 10);
    const after = await stats(page);
    assert.equal(before.cropsBytes, 0, "no crops sent without faces");
    assert.equal(after.cropsBytes, 0, "no crops sent without faces");
    assert.equal(after.fullFrames - before.fullFrames, 0, "no full frames sent while the detector runs");
    assert.equal(after.replies - before.replies, 0, "nothing sent, nothing answered");
  });
});

test("deleting the person through the UI turns the label back to Unknown", { skip: skip ?? false }, async () => {
  await withBrowser(videos.person, async (page) => {
    await page.goto(`${server.base}/#/people/${personId}`);
    await page.waitForSelector("#delete-person");
    await page.click("#delete-person");
    await page.click("#delete-person");
    await page.waitForFunction(() => location.hash === "#/people");
    await page.waitForSelector("#people-list li.empty");
    await page.goto(`${server.base}/#/live`);
    const labels = await waitForLabel(page, "unknown", "Unknown");
    assert.equal(labels.length, 1);
  });
});

test("phone-sized screen: the live view and the people page fit", { skip: skip ?? false }, async () => {
  await withBrowser(videos.stranger, async (page) => {
    await page.goto(`${server.base}/#/live`);
    await waitForLabel(page, "unknown", "Unknown");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px)`);
    await page.screenshot({ path: join(SCREENSHOTS, "phone-live.png"), fullPage: true });
    // Keyboard: Tab reaches the navigation, Enter follows it.
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => location.hash === "#/people");
    await page.waitForSelector("#people-list");
    await page.screenshot({ path: join(SCREENSHOTS, "phone-people.png"), fullPage: true });
  }, { width: 390, height: 844 });
});
