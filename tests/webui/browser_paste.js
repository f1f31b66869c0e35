// Paste infotexts the way a user does in headless Chromium: PNG Info tab -> open a PNG -> "Send to txt2img", then
// read every DemoFusion control of the txt2img tab; then the same with a PNG without DemoFusion keys.
// usage: node browser_paste.js URL DEMOFUSION.png PLAIN.png OUT_DIR   (PLAYWRIGHT_CORE: path of playwright-core;
// WANT: JSON {name: value} the first paste should show). Prints one JSON line
// {before, pasted, pasted_ok, pasted_ms, plain, plain_ok, plain_ms}; saves screenshots in OUT_DIR.
const path = require('path');
const { openWebUI } = require('./browser_common');
const [url, demofusionPng, plainPng, out] = process.argv.slice(2);
const want = JSON.parse(process.env.WANT);

function controls(names) {
  // Gradio 3 may give the block wrapper and the inner element the same id: read the innermost (last)
  const app = document.querySelector('gradio-app');
  const last = s => { const all = app.querySelectorAll(s); return all[all.length - 1]; };
  const values = {};
  for (const name of names) {
    const id = `#demofusion_ext_txt2img_${name}`;
    const number = last(`${id} input[type=number]`), box = last(`${id} input[type=checkbox]`), text = last(`${id} input`);
    const radios = app.querySelectorAll(`${id} input[type=radio]`), chosen = last(`${id} input[type=radio]:checked`);
    values[name] = number ? Number(number.value) : box ? box.checked : radios.length ? (chosen ? chosen.value : null)
      : text ? text.value : null;
  }
  // the InputAccordion: the checkbox in its title, and the hidden Gradio checkbox that holds the script's input
  values.enabled = last('#demofusion_ext_txt2img_enabled-visible-checkbox').checked;
  values.enabled_input = last('#demofusion_ext_txt2img_enabled-checkbox input[type=checkbox]').checked;
  return values;
}

function shows([names, want]) {
  const seen = window.demofusionControls(names);
  return Object.keys(want).every(k => seen[k] === want[k]);
}

async function sendToTxt2img(page, png, marker) {
  await page.locator('#tabs button', { hasText: 'PNG Info' }).first().click();
  const clear = page.locator('#pnginfo_image button[aria-label="Remove Image"], #pnginfo_image button[aria-label="Clear"]');
  if (await clear.count()) await clear.first().click();
  await page.locator('#pnginfo_image input[type=file]').first().setInputFiles(png);
  await page.waitForFunction(([hasKeys, marker]) => {
    const all = document.querySelector('gradio-app').querySelectorAll('#pnginfo_generation_info textarea');
    const text = all.length ? all[all.length - 1].value : '';
    return text.includes(marker) && text.includes('DemoFusion scale') === hasKeys;
  }, [png === demofusionPng, marker], { timeout: 60000, polling: 50 });
  const t0 = Date.now();
  await page.locator('#tab_pnginfo button', { hasText: 'Send to txt2img' }).filter({ visible: true }).first().click();
  return t0;
}

async function waitFor(page, names, expected) {
  try {
    await page.waitForFunction(shows, [names, expected], { timeout: 30000, polling: 50 });
    return true;
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    return false;
  }
}

(async () => {
  const names = Object.keys(want).filter(k => k !== 'enabled');
  const { browser, page } = await openWebUI(url);
  try {
    await page.evaluate(`window.demofusionControls = ${controls}`);
    // make the UI differ from what is pasted: open DemoFusion (turns it on), tick "phase images", open Advanced,
    // close DemoFusion again (turns it off)
    const accordion = page.locator('#demofusion_ext_txt2img_enabled');
    await accordion.locator('.label-wrap').first().click();
    await page.locator('#demofusion_ext_txt2img_phase_images input[type=checkbox]').last().check();
    await accordion.locator('.label-wrap', { hasText: 'Advanced' }).last().click();
    await accordion.locator('.label-wrap').first().click();
    await page.waitForFunction(() => !document.querySelector('gradio-app')
      .querySelector('#demofusion_ext_txt2img_enabled-checkbox input[type=checkbox]').checked, null, { timeout: 10000 });
    const before = await page.evaluate(controls, names);

    let t0 = await sendToTxt2img(page, demofusionPng, 'Size: 64x64');
    const pastedOk = await waitFor(page, names, { ...want, enabled_input: want.enabled });
    const pastedMs = Date.now() - t0;
    const pasted = await page.evaluate(controls, names);
    await accordion.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(out, 'paste-demofusion.png') });

    t0 = await sendToTxt2img(page, plainPng, 'Size: 64x64');
    const plainOk = await waitFor(page, names, { enabled: false, enabled_input: false });
    const plainMs = Date.now() - t0;
    const plain = await page.evaluate(controls, names);
    await accordion.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(out, 'paste-plain.png') });
    console.log(JSON.stringify({ before, pasted, pasted_ok: pastedOk, pasted_ms: pastedMs,
                                 plain, plain_ok: plainOk, plain_ms: plainMs }));
  } finally {
    await browser.close();
  }
})().catch(e => { console.error(e); process.exit(1); });
