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
})();
