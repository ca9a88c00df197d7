// Draws the dashboard's charts (Chart.js, served locally) from the JSON the page carries, and
// again whenever htmx swaps in fresh figures.
(function () {
  "use strict";
  const charts = {};

  function draw() {
    const holder = document.getElementById("chart-data");
    if (!holder || !window.Chart) return;
    const data = JSON.parse(holder.textContent || "{}");
    Object.values(charts).forEach(function (chart) { chart.destroy(); });
    const overTime = document.getElementById("chart-over-time");
    if (overTime && data.over_time) {
      charts.overTime = new window.Chart(overTime, {
        type: "line",
        data: {
          labels: data.over_time.labels,
          datasets: [
            { label: "Cost (USD)", data: data.over_time.cost, yAxisID: "cost" },
            { label: "Requests", data: data.over_time.requests, yAxisID: "count" },
            { label: "Tokens", data: data.over_time.tokens, yAxisID: "tokens" },
          ],
        },
        options: { animation: false, scales: { cost: { position: "left" }, count: { position: "right" }, tokens: { display: false } } },
      });
    }
    const grouped = document.getElementById("chart-grouped");
    if (grouped && data.grouped) {
      charts.grouped = new window.Chart(grouped, {
        type: "bar",
        data: { labels: data.grouped.labels, datasets: [{ label: "Cost (USD)", data: data.grouped.cost }] },
        options: { animation: false },
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw();
    document.body.addEventListener("htmx:afterSettle", draw);
  });
})();
