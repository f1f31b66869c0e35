// DemoFusion: show the output size the settings imply, next to the Scale slider, without a server round trip.
(function() {
    function value(id) {
        var el = gradioApp().querySelector("#" + id + " input[type=number]");
        return el ? parseFloat(el.value) : NaN;
    }

    function update(tab) {
        var slider = gradioApp().getElementById("demofusion_ext_" + tab + "_scale");
        if (!slider) return;
        var w = value(tab + "_width"), h = value(tab + "_height"), s = value("demofusion_ext_" + tab + "_scale");
        var note = slider.querySelector(".demofusion-output-size");
        if (!note) {
            note = document.createElement("div");
            note.className = "demofusion-output-size";
            slider.appendChild(note);
        }
        var phases = Math.floor(s) + (s > Math.floor(s) ? 1 : 0);
        var text = isNaN(w * h * s) ? "" :
            "Output " + Math.round(s * w / 8) * 8 + " x " + Math.round(s * h / 8) * 8 + " px in " + phases + " phases";
        if (note.textContent !== text) note.textContent = text;   // writing unchanged text would re-trigger onUiUpdate
    }

    onUiUpdate(function() {
        update("txt2img");
        update("img2img");
    });
})();
