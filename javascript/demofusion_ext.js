// DemoFusion: next to the Scale slider, the output size and the model evaluations the settings imply,
// computed in the browser as the size, scale or stride change (the same rules as demofusion_ext/phases.py).
(function() {
    function value(id) {
        var el = gradioApp().querySelector("#" + id + " input[type=number]");
        return el ? parseFloat(el.value) : NaN;
    }

    function windows(length, win, stride) {
        var step = Math.max(1, Math.floor(win * stride + 0.5));
        return length <= win ? 1 : Math.ceil((length - win) / step) + 1;
    }

    // [{scale, h, w, local, global}] for base latent h x w
    function plan(h, w, scale, stride) {
        var scales = [];
        for (var k = 1; k <= Math.floor(scale); k++) scales.push(k);
        if (scale > Math.floor(scale)) scales.push(scale);
        return scales.map(function(s, i) {
            var ph = Math.floor(s * h + 0.5), pw = Math.floor(s * w + 0.5);
            var d = s === Math.floor(s) ? s : Math.max(2, Math.floor(s + 0.5));
            if (i === 0) return {scale: s, h: ph, w: pw, local: 1, global: 0};
            return {scale: s, h: ph, w: pw, local: windows(ph, h, stride) * windows(pw, w, stride), global: d * d};
        });
    }

    function describe(tab) {
        var p = "demofusion_ext_" + tab + "_";
        var W = value(tab + "_width"), H = value(tab + "_height"), S = value(p + "scale"), st = value(p + "stride");
        var steps = value(tab + "_steps");
        if (isNaN(W * H * S * st)) return "";
        var phases = plan(Math.floor(H / 8), Math.floor(W / 8), S, st), last = phases[phases.length - 1];
        var total = 0;
        var parts = phases.map(function(ph, i) {
            total += ph.local + ph.global;
            return "phase " + (i + 1) + ": " + (i === 0 ? "1" : ph.local + " + " + ph.global);
        });
        return "Output " + last.w * 8 + " x " + last.h * 8 + " px in " + phases.length + " phases. " +
            "Model evaluations per step (base-size views; x2 with CFG): " + parts.join(", ") + "; total " + total +
            (isNaN(steps) ? "" : ", " + total * steps + " for " + steps + " steps") + ".";
    }

    function update(tab) {
        var slider = gradioApp().getElementById("demofusion_ext_" + tab + "_scale");
        if (!slider) return;
        var note = slider.querySelector(".demofusion-output-size");
        if (!note) {
            note = document.createElement("div");
            note.className = "demofusion-output-size";
            slider.appendChild(note);
        }
        var text = describe(tab);
        if (note.textContent !== text) note.textContent = text;   // writing unchanged text would re-trigger onUiUpdate
    }

    onUiUpdate(function() {
        update("txt2img");
        update("img2img");
    });
})();
