/* Gallery: tiles of running edits update in place. One request for the whole page asks for the states of the
   running tiles (GET /gallery/states/?ids=...), every few seconds while any is running; then polling stops. */
(function () {
  "use strict";
  var gallery = document.querySelector("[data-states-url]");
  if (!gallery) return;
  var url = gallery.dataset.statesUrl;
  var every = parseInt(gallery.dataset.pollMs || "2000", 10);

  function running() {
    return Array.prototype.slice.call(gallery.querySelectorAll(".tile[data-running]"));
  }
  function update(tile, info) {
    tile.dataset.state = info.state;
    var badge = tile.querySelector(".badge");
    if (badge) { badge.className = "badge " + info.state; badge.textContent = info.label; }
    if (!info.final) return;
    delete tile.dataset.running;
    tile.classList.remove("tile-created", "tile-submitted");
    tile.classList.add("tile-" + info.state);
    if (info.thumb) {
      var img = tile.querySelector("img");
      if (img) img.src = info.thumb;
    }
  }
  function poll() {
    var tiles = running();
    if (!tiles.length) return;
    var ids = tiles.map(function (t) { return t.dataset.job; });
    fetch(url + "?ids=" + encodeURIComponent(ids.join(",")), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data) tiles.forEach(function (t) { var info = data.jobs[t.dataset.job]; if (info) update(t, info); });
      })
      .catch(function () { /* try again at the next tick */ })
      .then(function () { if (running().length) window.setTimeout(poll, every); });
  }
  if (running().length) window.setTimeout(poll, every);
})();
