// Open a picture in the img2img tab in headless Chromium and read DemoFusion's plan line before Generate.
// usage: node browser_img2img_plan.js URL PICTURE.png OUT_DIR   (PLAYWRIGHT_CORE: path of playwright-core;
// WANT: the line the engine's plan gives). Prints one JSON line {line, ok, ms}; saves a screenshot in OUT_DIR.
const path = require('path');
const { openWebUI, setNumber } = require('./browser_common');
const [url, picture, out] = process.argv.slice(2);
const want = process.env.WANT;

function planLine(w) {
  // Gradio 3 gives the block wrapper and the inner HTML the same id: read the innermost
  const all = document.querySelector('gradio-app').querySelectorAll('#demofusion_ext_img2img_plan');
  const n = all[all.length - 1];
  return n && n.textContent.trim() === w;
}

(async () => {
  const { browser, page } = await openWebUI(url);
  try {
    await page.locator('#tabs button', { hasText: 'img2img' }).first().click();
    await setNumber(page, 'img2img_steps', 4);
    await setNumber(page, 'img2img_width', 128);
    await setNumber(page, 'img2img_height', 128);
    await page.locator('#demofusion_ext_img2img_enabled .label-wrap').first().click();
    await setNumber(page, 'demofusion_ext_img2img_scale', 3);
    const t0 = Date.now();
    await page.locator('#img2img_image input[type=file]').first().setInputFiles(picture);
    let ok = true;
    try {
      await page.waitForFunction(planLine, want, { timeout: 5000, polling: 20 });
    } catch (e) {
      ok = false;
    }
    const ms = Date.now() - t0;
    const line = (await page.locator('#demofusion_ext_img2img_plan').last().innerText()).trim();
    await page.locator('#demofusion_ext_img2img_enabled').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(out, 'img2img-plan.png') });
    console.log(JSON.stringify({ line, ok, ms }));
  } finally {
    await browser.close();
  }
})().catch(e => { console.error(e); process.exit(1); });
