/* Job page: the before/after slider (a plain range input, so keyboards and screen readers work) and the
   delete confirmation. Delegated from document because htmx swaps the panel in when the edit finishes. */
(function () {
  "use strict";
  function sync(range) {
    var compare = range.closest(".compare");
    if (compare) compare.style.setProperty("--pos", range.value + "%");
  }
  document.addEventListener("input", function (e) {
    if (e.target.classList && e.target.classList.contains("compare-range")) sync(e.target);
  });
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) e.preventDefault();
  });
  document.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll(".compare-range").forEach(sync);
  });
  // The edit was deleted (in another tab): polling would 404 forever, so show the page as it now is.
  document.addEventListener("htmx:responseError", function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 404) window.location.reload();
  });
  document.querySelectorAll(".compare-range").forEach(sync);

  // The full view: a modal dialog with the whole result; a click on the picture toggles fit / pixel for pixel.
  document.addEventListener("click", function (e) {
    var opener = e.target.closest && e.target.closest("[data-zoom-open]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.zoomOpen);
      if (dialog && dialog.showModal) dialog.showModal();
      return;
    }
    if (e.target.classList && e.target.classList.contains("zoom-image")) e.target.classList.toggle("actual");
  });

  // While the phase is unchanged the poll answers 204 and the panel stays as rendered, so the clock and the
  // estimated progress move here, from the seconds the server measured when it rendered the panel (no clock skew).
  // The estimate is edit_job_progress's; its constants come from editor/progress.py through the page (#job-bar).
  var barData = document.getElementById("job-bar");
  var estimate = barData ? JSON.parse(barData.textContent) : null;
  var panelShownAt = performance.now();
  document.addEventListener("htmx:afterSwap", function () { panelShownAt = performance.now(); });
  window.setInterval(function () {
    var panel = document.getElementById("job-panel");
    if (!panel || panel.dataset.elapsed === undefined) return;
    var since = (performance.now() - panelShownAt) / 1000;
    var clock = panel.querySelector("[data-tick=elapsed]");
    if (clock) clock.textContent = String(Math.round(parseFloat(panel.dataset.elapsed) + since));
    var bar = panel.querySelector("progress");
    var expected = parseFloat(panel.dataset.expected);
    if (bar && estimate && panel.dataset.estimating !== undefined && expected > 0) {
      // editor/progress.py wait_fraction: the whole wait, up to `late` at the usual time, then creeping to `cap`.
      var ratio = (parseFloat(panel.dataset.elapsed) + since) / expected;
      var fraction = ratio <= 1 ? estimate.start + (estimate.late - estimate.start) * ratio
        : estimate.late + (estimate.cap - estimate.late) * (1 - Math.exp(1 - ratio));
      var percent = Math.round(100 * fraction);
      if (percent > bar.value) { bar.value = percent; bar.textContent = percent + "%"; }
      var late = panel.querySelector("[data-testid=late-note]");
      if (late && ratio > 1) late.hidden = false;
    }
  }, 1000);
})();
