// The dashboard in a real browser (Debian's chromium driven by
// playwright-core): every page loads without console errors, the
// experiment charts draw data, the live view shows requests as they
// finish, the playground streams two strategies side by side, and a
// preference slider reaches the API. Screenshots go to the folder given.
//
// node ui.mjs BASE_URL SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.STEERGATE_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const errors = [];
function check(ok, msg) {
  if (!ok) throw new Error(msg);
}
async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}
async function chat(body) {
  const r = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  check(r.ok, `chat: HTTP ${r.status}`);
  return r.json();
}

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => { if (!r.url().includes("/ui/api/live")) errors.push(`request failed: ${r.url()}`); });

  // Experiments: the demo experiment's table, verdict and four charts.
  await page.goto(`${base}/ui/`);
  await page.waitForSelector('#exp-table tr[data-arm="adaptive"]');
  await page.waitForFunction(() =>
    document.querySelectorAll("#chart-series polyline").length === 2 &&
    document.querySelectorAll("#chart-hist rect").length > 0 &&
    document.querySelectorAll("#chart-scatter circle").length > 0 &&
    document.querySelectorAll("#chart-cost rect").length === 2);
  const verdict = await page.textContent("#exp-verdict");
  check(verdict.length > 0, "no verdict shown");
  const cells = await page.$$eval('#exp-table tr[data-arm="adaptive"] td', (tds) => tds.map((t) => t.textContent));
  check(Number(cells[2]) > 0 && cells[5] !== "–", `the adaptive arm's row has no data: ${cells}`);
  await shot(page, "experiments");
  console.log(`experiments: ${verdict}`);

  // Live requests: the kept ones at once, then a new one as it finishes.
  await page.click('nav a[data-page="live"]');
  await page.waitForSelector("#live-rows tr");
  const before = await page.$$eval("#live-rows tr", (rs) => rs.length);
  await chat({ model: "reference", seed: 7, max_tokens: 16, messages: [{ role: "user", content: "live?" }], steering: { strategy: "best_of_n", n: 3 } });
  await page.waitForFunction((n) => document.querySelectorAll("#live-rows tr").length > n, before);
  const top = await page.$$eval("#live-rows tr:first-child td", (tds) => tds.map((t) => t.textContent));
  check(top[2] === "best_of_n" && top[7] === "3" && top[9].includes("u="), `the new request's row: ${top}`);
  await shot(page, "live");
  console.log(`live: ${before} kept, then ${top.slice(1, 8).join(" ")}`);

  // Playground: best-of-N against particles, both streamed.
  await page.click('nav a[data-page="playground"]');
  await page.selectOption("#pane-a .pg-strategy", "best_of_n");
  await page.fill("#pane-a .pg-params", '{"n": 4}');
  await page.selectOption("#pane-b .pg-strategy", "particles");
  await page.fill("#pane-b .pg-params", '{"n": 4, "step_tokens": 8}');
  await page.fill("#pg-prompt", "Why do leaves change colour in autumn?");
  await page.click("#pg-run");
  for (const pane of ["#pane-a", "#pane-b"]) {
    await page.waitForFunction((p) => document.querySelector(`${p} .pg-cost`).textContent.includes("backend tokens"), pane);
    const text = await page.textContent(`${pane} .pg-text`);
    const rows = await page.$$eval(`${pane} .pg-candidates tr`, (rs) => rs.length);
    check(text.trim().length > 0 && rows > 1, `${pane}: answer ${JSON.stringify(text)}, ${rows} candidate rows`);
  }
  await shot(page, "playground");
  console.log(`playground: ${await page.textContent("#pane-a .pg-cost")} | ${await page.textContent("#pane-b .pg-cost")}`);

  // Preferences: move the verbosity slider and save; the API has it.
  await page.click('nav a[data-page="preferences"]');
  await page.fill("#pref-user", "browser-user");
  await page.click("#pref-load");
  // The page first loads its default user: wait for this one's sliders.
  await page.waitForFunction(() => document.querySelector("#pref-status").textContent.includes("browser-user"));
  await page.waitForSelector('#pref-sliders input[data-objective="verbosity"]');
  await page.$eval('#pref-sliders input[data-objective="verbosity"]', (i) => { i.value = "-1.5"; i.dispatchEvent(new Event("input")); });
  await page.click("#pref-save");
  await page.waitForFunction(() => document.querySelector("#pref-status").textContent.startsWith("saved"));
  const r = await fetch(`${base}/v1/users/browser-user/preferences`);
  const stored = await r.json();
  // Only the moved slider is stored: the route's weights still apply to
  // the others.
  check(r.ok && stored.weights.verbosity === -1.5 && Object.keys(stored.weights).length === 1, `the API has ${JSON.stringify(stored)}`);
  await shot(page, "preferences");
  console.log(`preferences: ${JSON.stringify(stored.weights)}`);

  check(errors.length === 0, `browser console:\n${errors.join("\n")}`);
} finally {
  await browser.close();
}
