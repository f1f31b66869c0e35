// Drive the txt2img tab in headless Chromium: enable DemoFusion, change each input the plan line depends on and
// time how long the line takes to follow (CHANGES: JSON [[elem_id, value, expected line], ...], the last change
// leaving the settings to generate with), generate with phase images, and report what the gallery shows.
// Prints one JSON line; saves screenshots in OUT_DIR.
// usage: node browser_generate.js URL OUT_DIR   (PLAYWRIGHT_CORE: path of playwright-core)
const path = require('path');
const { openWebUI, setNumber } = require('./browser_common');
const [url, out] = process.argv.slice(2);

(async () => {
  const { browser, page } = await openWebUI(url);
  try {
    await page.locator('#txt2img_prompt textarea').fill('a photo of a cat');
    await setNumber(page, 'txt2img_steps', 4);
    await setNumber(page, 'txt2img_width', 128);
    await setNumber(page, 'txt2img_height', 128);
    await page.locator('#demofusion_ext_txt2img_enabled input[type=checkbox]').first().check();
    await page.locator('#demofusion_ext_txt2img_enabled .label-wrap').first().click();
    await page.locator('#demofusion_ext_txt2img_phase_images input[type=checkbox]').check();
    const follows = [];
    for (const [id, value, want] of JSON.parse(process.env.CHANGES || '[]')) {
      const t0 = Date.now();
      await setNumber(page, id, value);
      let seen = null;
      try {
        await page.waitForFunction(w => {
          // Gradio 3 gives the block wrapper and the inner HTML the same id: read the innermost
          const all = document.querySelector('gradio-app').querySelectorAll('#demofusion_ext_txt2img_plan');
          const n = all[all.length - 1];
          return n && n.textContent.trim() === w;
        }, want, { timeout: 1000, polling: 20 });
      } catch (e) {
        seen = await page.locator('#demofusion_ext_txt2img_plan').last().innerText();
      }
      follows.push({ id, value, ms: Date.now() - t0, ok: seen === null, seen });
    }
    const noteText = (await page.locator('#demofusion_ext_txt2img_plan').last().innerText()).trim();
    await page.locator('#demofusion_ext_txt2img_enabled').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(out, 'accordion.png') });
    await page.locator('#txt2img_generate').click();
    await page.locator('#html_info_txt2img').last().getByText('DemoFusion output size').waitFor({ timeout: 180000 });
    await page.waitForFunction(() => document.querySelectorAll('#txt2img_gallery .grid-wrap .thumbnail-item img').length >= 2,
                               null, { timeout: 60000 });
    const sizes = await page.$$eval('#txt2img_gallery .grid-wrap .thumbnail-item img', imgs => Promise.all(imgs.map(i =>
      new Promise(r => { const im = new Image(); im.onload = () => r([im.naturalWidth, im.naturalHeight]); im.src = i.src; }))));
    await page.waitForFunction(() => { const b = document.querySelector('gradio-app').querySelector('#txt2img_interrupt');
      return !b || getComputedStyle(b).display === 'none'; }, null, { timeout: 60000 });
    const info = await page.locator('#html_info_txt2img').last().innerText();
    await page.screenshot({ path: path.join(out, 'generated.png') });
    console.log(JSON.stringify({ note: noteText, follows, gallery: sizes, info }));
  } finally {
    await browser.close();
  }
})().catch(e => { console.error(e); process.exit(1); });
