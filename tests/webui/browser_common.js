// What the browser tests share: headless Chromium started offline, the WebUI page loaded, number inputs set.
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

async function openWebUI(url) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'] });
  const page = await browser.newPage({ viewport: { width: 1500, height: 1300 } });
  // exo101's Forge Neo reloads the page 2 s after the first load of a session unless this is set (its modules/ui.py)
  await page.addInitScript(() => sessionStorage.setItem('physton_icon_refreshed', '1'));
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 180000 });
  await page.locator('#txt2img_prompt textarea').waitFor({ timeout: 180000 });
  return { browser, page };
}

async function setNumber(page, id, value) {
  const input = page.locator(`#${id} input[type=number]`);
  await input.fill(String(value));
  await input.press('Enter');
}

module.exports = { openWebUI, setNumber };
