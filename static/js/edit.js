/* New edit page: drag-and-drop, checks before upload, the movable 512x512 crop square, prompt chips,
   the free region preview (our engine shows what would change, and warns when the edit would be refused),
   and (with S3) a direct browser-to-bucket upload for large files. No framework, no CDN. */
(function () {
  "use strict";
  var form = document.getElementById("edit-form");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var dropzone = document.getElementById("dropzone");
  var errors = document.getElementById("image-errors");
  var status = document.getElementById("upload-status");
  var note = document.getElementById("preview-note");
  var crop = document.getElementById("crop");
  var stage = document.getElementById("crop-stage");
  var img = document.getElementById("crop-image");
  var square = document.getElementById("crop-square");
  var zoom = document.getElementById("crop-zoom");
  var preview = document.getElementById("crop-preview");
  var fields = {
    left: form.querySelector("[name=crop_left]"), top: form.querySelector("[name=crop_top]"),
    side: form.querySelector("[name=crop_side]"), photo: form.querySelector("[name=photo]")
  };
  var maxBytes = parseInt(form.dataset.maxBytes, 10);
  var accepted = ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"];
  // The square, in fractions: left of width, top of height, side of the shorter side.
  var sel = { left: 0, top: 0, side: 1 };
  var objectUrl = null;

  document.querySelectorAll(".chip[data-prompt]").forEach(function (chip) {
    chip.addEventListener("click", function () {
      var prompt = form.querySelector("[name=prompt]");
      prompt.value = chip.dataset.prompt;
      prompt.focus();
    });
  });

  function showError(text) {
    if (!errors) return;
    errors.innerHTML = "";
    if (text) { var p = document.createElement("p"); p.textContent = text; errors.appendChild(p); }
  }

  function mb(n) { return (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + " MB"; }

  function isHeic(file) { return /\.(heic|heif)$/i.test(file.name) || /hei[cf]/.test(file.type); }

  function check(file) {
    if (file.size > maxBytes) return "This file is too big (" + mb(file.size) + "). The limit is " + mb(maxBytes) + ".";
    if (file.size === 0) return "This file is empty. Please choose another photo.";
    if (file.type && accepted.indexOf(file.type) < 0 && !isHeic(file))
      return "This file is not a picture we can read. Please upload a JPEG, PNG, WebP or HEIC photo.";
    return "";
  }

  function writeFields() {
    if (!fields.left) return;
    fields.left.value = sel.left.toFixed(5); fields.top.value = sel.top.toFixed(5); fields.side.value = sel.side.toFixed(5);
  }

  function centre() {
    var w = img.naturalWidth, h = img.naturalHeight, s = Math.min(w, h) * sel.side;
    sel.left = (w - s) / 2 / w; sel.top = (h - s) / 2 / h;
  }

  function clamp() {
    var w = img.naturalWidth, h = img.naturalHeight, s = Math.min(w, h) * sel.side;
    sel.left = Math.min(Math.max(0, sel.left), (w - s) / w);
    sel.top = Math.min(Math.max(0, sel.top), (h - s) / h);
  }

  function draw() {
    if (!img.naturalWidth) return;
    clamp();
    var w = img.naturalWidth, h = img.naturalHeight, s = Math.min(w, h) * sel.side;
    square.style.left = (sel.left * 100) + "%"; square.style.top = (sel.top * 100) + "%";
    square.style.width = (s / w * 100) + "%"; square.style.height = (s / h * 100) + "%";
    var ctx = preview.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(img, sel.left * w, sel.top * h, s, s, 0, 0, preview.width, preview.height);
    writeFields();
    schedulePreview();
  }

  // ---- The free region preview: the square goes to our engine, which answers the region and its verdict.
  var previewUrl = form.dataset.previewUrl;
  var region = document.getElementById("region-preview");
  var regionNote = document.getElementById("region-note");
  var regionWarning = document.getElementById("region-warning");
  var promptField = form.querySelector("[name=prompt]");
  var previewTimer = null, previewSeq = 0, maskUrl = null;

  function hideRegion() {
    if (!region) return;
    region.hidden = true; regionNote.hidden = true; regionWarning.hidden = true;
  }

  function schedulePreview() {
    if (!previewUrl || !img || !img.naturalWidth) return;
    clearTimeout(previewTimer);
    previewTimer = setTimeout(askPreview, 350);
  }

  function dataUriBlob(uri) {
    // img-src allows blob: but not data: (CSP), so the mask becomes a blob URL.
    var bytes = atob(uri.split(",")[1]), buf = new Uint8Array(bytes.length);
    for (var i = 0; i < bytes.length; i++) buf[i] = bytes.charCodeAt(i);
    return new Blob([buf], { type: "image/png" });
  }

  function showRegion(answer) {
    if (!answer.available) { hideRegion(); return; }
    var mask = new Image();
    mask.onload = function () {
      var ctx = region.getContext("2d");
      ctx.clearRect(0, 0, region.width, region.height);
      ctx.globalCompositeOperation = "source-over";
      ctx.drawImage(mask, 0, 0, region.width, region.height);
      // Keep the mask's white parts, tinted: black pixels become transparent.
      var px = ctx.getImageData(0, 0, region.width, region.height);
      for (var i = 0; i < px.data.length; i += 4) {
        var on = px.data[i] > 127;
        px.data[i] = 236; px.data[i + 1] = 32; px.data[i + 2] = 196; px.data[i + 3] = on ? 120 : 0;
      }
      ctx.putImageData(px, 0, 0);
      region.hidden = false;
    };
    if (maskUrl) URL.revokeObjectURL(maskUrl);
    maskUrl = URL.createObjectURL(dataUriBlob(answer.mask));
    mask.src = maskUrl;
    var estimate = answer.estimate ? " This is an estimate from our own engine: Segmind's model decides the final region." : "";
    regionNote.textContent = (answer.ok ? "Highlighted: the part the edit will change." : "Highlighted: what the engine found.") + estimate;
    regionNote.hidden = false;
    if (answer.ok) { regionWarning.hidden = true; }
    else {
      regionWarning.textContent = "This edit would probably be refused: " + answer.message +
        " If you start it anyway and it fails, the credit comes back.";
      regionWarning.hidden = false;
    }
  }

  function askPreview() {
    var clothing = form.querySelector("[name=clothing]:checked");
    if (!clothing) { hideRegion(); return; }
    var square = document.createElement("canvas");
    square.width = square.height = 512;
    var w = img.naturalWidth, h = img.naturalHeight, s = Math.min(w, h) * sel.side;
    square.getContext("2d").drawImage(img, sel.left * w, sel.top * h, s, s, 0, 0, 512, 512);
    var mine = ++previewSeq;
    try {
      square.toBlob(function (blob) {
        if (!blob || mine !== previewSeq) return;
        var body = new FormData();
        body.append("image", blob, "square.jpg");
        body.append("clothing", clothing.value);
        body.append("prompt", promptField ? promptField.value : "");
        fetch(previewUrl, {
          method: "POST", body: body, credentials: "same-origin",
          headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value }
        }).then(function (r) { return r.ok ? r.json() : { available: false }; })
          .then(function (answer) { if (mine === previewSeq) showRegion(answer); })
          .catch(function () { if (mine === previewSeq) hideRegion(); });
      }, "image/jpeg", 0.92);
    } catch (e) {
      hideRegion();  // a photo from another origin cannot be read back from the canvas: no preview
    }
  }

  form.querySelectorAll("[name=clothing]").forEach(function (radio) { radio.addEventListener("change", schedulePreview); });
  if (promptField) promptField.addEventListener("change", schedulePreview);

  function useFile(file) {
    showError("");
    // A new file replaces the photo kept from an earlier try (the server stored it; its id is no longer sent).
    if (fields.photo) fields.photo.value = "";
    var kept = document.getElementById("kept-photo");
    if (kept) kept.hidden = true;
    var problem = check(file);
    // The refused file stays chosen: pressing Start anyway repeats this reason (the submit handler checks it
    // again) instead of sending nothing and being told to choose a photo.
    if (problem) { showError(problem); crop.hidden = true; return; }
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    sel = { left: 0, top: 0, side: 1 };
    zoom.value = 100;
    note.hidden = true;
    img.onload = function () {
      crop.hidden = false; centre(); draw();
      if (Math.min(img.naturalWidth, img.naturalHeight) < parseInt(form.dataset.minSide, 10))
        showError("This picture is too small (" + img.naturalWidth + "x" + img.naturalHeight + " pixels). " +
                  "Please upload one at least " + form.dataset.minSide + " pixels on each side.");
    };
    img.onerror = function () {
      // Most browsers cannot show HEIC: the server converts it and uses the centre square.
      crop.hidden = true;
      ["left", "top", "side"].forEach(function (k) { if (fields[k]) fields[k].value = ""; });
      note.hidden = false;
      note.textContent = isHeic(file)
        ? "Your browser cannot preview HEIC photos. We convert it and use the centre square."
        : "This picture could not be previewed; the server will check it when you start the edit.";
    };
    img.src = objectUrl;
  }

  if (input) {
    input.addEventListener("change", function () { if (input.files.length) useFile(input.files[0]); });
    ["dragenter", "dragover"].forEach(function (name) {
      dropzone.addEventListener(name, function (e) { e.preventDefault(); dropzone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      dropzone.addEventListener(name, function () { dropzone.classList.remove("dragging"); });
    });
    dropzone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        useFile(input.files[0]);
      }
    });
  }

  if (square) {
    var drag = null;
    square.addEventListener("pointerdown", function (e) {
      drag = { x: e.clientX, y: e.clientY, left: sel.left, top: sel.top };
      square.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    square.addEventListener("pointermove", function (e) {
      if (!drag) return;
      var rect = stage.getBoundingClientRect();
      sel.left = drag.left + (e.clientX - drag.x) / rect.width;
      sel.top = drag.top + (e.clientY - drag.y) / rect.height;
      draw();
    });
    ["pointerup", "pointercancel"].forEach(function (name) { square.addEventListener(name, function () { drag = null; }); });
    square.addEventListener("keydown", function (e) {
      var step = e.shiftKey ? 0.1 : 0.02, moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if (!moves[e.key]) return;
      e.preventDefault();
      sel.left += moves[e.key][0]; sel.top += moves[e.key][1];
      draw();
    });
    zoom.addEventListener("input", function () {
      var w = img.naturalWidth, h = img.naturalHeight, old = Math.min(w, h) * sel.side;
      var cx = sel.left * w + old / 2, cy = sel.top * h + old / 2;
      sel.side = parseInt(zoom.value, 10) / 100;
      var s = Math.min(w, h) * sel.side;
      sel.left = (cx - s / 2) / w; sel.top = (cy - s / 2) / h;
      draw();
    });
  }

  function post(url, data) {
    var body = new FormData();
    Object.keys(data).forEach(function (k) { body.append(k, data[k]); });
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value }
    }).then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || "Upload failed."); return j; }); });
  }

  // Large files with S3: browser -> bucket (presigned POST), then the server checks and normalises it.
  function directUpload(file) {
    status.textContent = "Uploading your photo…";
    return post(form.dataset.uploadStart, {}).then(function (grant) {
      var body = new FormData();
      Object.keys(grant.fields).forEach(function (k) { body.append(k, grant.fields[k]); });
      // The signed policy accepts image types only; the server sniffs the real type after the upload.
      body.append("Content-Type", /^image\//.test(file.type) ? file.type : "image/jpeg");
      body.append("file", file);
      return fetch(grant.url, { method: "POST", body: body }).then(function (r) {
        if (!r.ok) throw new Error(r.status === 400 ? "This file is too big." : "The upload failed. Please try again.");
        status.textContent = "Checking your photo…";
        return post(form.dataset.uploadFinish, {
          key: grant.key, name: file.name,
          crop_left: fields.left.value, crop_top: fields.top.value, crop_side: fields.side.value
        });
      });
    });
  }

  var sending = false;
  form.addEventListener("submit", function (e) {
    var button = document.getElementById("submit-edit");
    if (sending) { e.preventDefault(); return; }
    var file = input && input.files.length ? input.files[0] : null;
    if (file && check(file)) { e.preventDefault(); showError(check(file)); return; }
    var direct = form.dataset.uploadStart && file && file.size >= parseInt(form.dataset.directMinBytes, 10);
    sending = true; button.disabled = true;
    if (!direct) { status.textContent = "Sending…"; return; }
    e.preventDefault();
    directUpload(file).then(function (result) {
      fields.photo.value = result.photo;
      input.value = "";  // the server already has the photo: do not send the bytes again
      status.textContent = "Starting the edit…";
      form.submit();
    }).catch(function (err) {
      showError(err.message); status.textContent = ""; sending = false; button.disabled = false;
    });
  });
})();
