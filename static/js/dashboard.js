/* Draws the usage dashboard's charts from the JSON the page embeds (#dashboard-data), with vendored Chart.js. */
(function () {
  "use strict";
  var source = document.getElementById("dashboard-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var colors = { ok: "#16a34a", bad: "#dc2626", warn: "#d97706", accent: "#7c3aed", accent2: "#0ea5e9", grey: "#6b7280" };
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;  // figures, not a show; also keeps screenshots deterministic
  window.dashboardCharts = {};

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { window.dashboardCharts[id] = new Chart(canvas, config); }
  }
  function line(label, values, color, dashed) {
    return { label: label, data: values, borderColor: color, backgroundColor: color, spanGaps: true,
             borderDash: dashed ? [6, 4] : [], tension: 0.2, pointRadius: 2 };
  }

  draw("chart-outcomes", {
    type: "bar",
    data: { labels: data.labels, datasets: [
      { label: "Succeeded", data: data.succeeded, backgroundColor: colors.ok },
      { label: "Failed (provider or site)", data: data.failed, backgroundColor: colors.bad },
      { label: "Refused (photo or prompt)", data: data.refused, backgroundColor: colors.accent2 },
      { label: "Expired", data: data.expired, backgroundColor: colors.warn },
      { label: "In flight", data: data.in_flight, backgroundColor: colors.grey }
    ] },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
  });
  draw("chart-success", {
    type: "line",
    data: { labels: data.labels, datasets: [line("Success rate %", data.success_rate, colors.ok)] },
    options: { scales: { y: { min: 0, max: 100 } } }
  });
  draw("chart-times", {
    type: "line",
    data: { labels: data.labels, datasets: [
      line("Provider median", data.inference_p50, colors.accent),
      line("Provider p95", data.inference_p95, colors.accent, true),
      line("End-to-end median", data.e2e_p50, colors.accent2),
      line("End-to-end p95", data.e2e_p95, colors.accent2, true)
    ] },
    options: { scales: { y: { beginAtZero: true } } }
  });
  draw("chart-credits", {
    type: "bar",
    data: { labels: data.labels, datasets: [
      { label: "Charged", data: data.credits_charged, backgroundColor: colors.accent },
      { label: "Refunded", data: data.credits_refunded, backgroundColor: colors.warn },
      { label: "Granted", data: data.credits_granted, backgroundColor: colors.ok }
    ] },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
  draw("chart-users", {
    type: "bar",
    data: { labels: data.labels, datasets: [{ label: "Active users", data: data.active_users, backgroundColor: colors.accent2 }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
  draw("chart-errors", {
    type: "bar",
    data: { labels: data.error_kinds, datasets: [{ label: "Errors", data: data.error_counts, backgroundColor: colors.bad }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
})();
