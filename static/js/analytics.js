// Draws the analytics charts with Chart.js (static/vendor/chartjs/).
//
// Each <canvas data-chart="ID" data-measure="KEY"> becomes a chart of one measure; its numbers
// come from the JSON data block with that id, which the page writes with Django's json_script
// (a data block is never executed, so the Content-Security-Policy has nothing to refuse):
//   {"labels": ["2025-05-01", ...], "modes": ["live", "test"],
//    "values": {"live": {"invocations": [3, 0, ...], ...}, "test": {...}}}
// data-kind="spark" draws the small stacked bars of the environment's overview.
// Charts in content htmx swaps in later (the overview's activity) are drawn when it arrives.
(function () {
  "use strict";

  const COLORS = { live: "#3654d6", test: "#d08a1c" };
  const NAMES = { live: "Live", test: "Test" };
  // Up to two weeks, one bar per day reads best; longer periods become lines.
  const MAX_BAR_DAYS = 14;

  function readData(id) {
    const block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }

  // "2025-05-01" → "1 May": the days are UTC days, so they are formatted in UTC.
  function dayLabel(isoDate, withWeekday) {
    const [year, month, day] = isoDate.split("-").map(Number);
    const options = { day: "numeric", month: "short", timeZone: "UTC" };
    if (withWeekday) options.weekday = "short";
    return new Date(Date.UTC(year, month - 1, day)).toLocaleDateString(undefined, options);
  }

  function chartConfig(data, measure, spark) {
    const bars = spark || data.labels.length <= MAX_BAR_DAYS;
    const datasets = data.modes.map(function (mode, index) {
      return {
        label: NAMES[mode] || mode,
        data: data.values[mode][measure],
        // Lines: the first mode's area is shaded lightly (hex alpha), the second is a line.
        backgroundColor: bars ? COLORS[mode] : COLORS[mode] + "1f",
        borderColor: COLORS[mode],
        fill: !bars && index === 0 ? "origin" : false,
        borderWidth: bars ? 0 : 2,
        borderRadius: bars ? 3 : 0,
        pointRadius: bars || data.labels.length > 45 ? 0 : 2.5,
        pointBackgroundColor: COLORS[mode],
        pointHoverRadius: 4,
        tension: 0.2,
        maxBarThickness: spark ? 22 : 28,
      };
    });
    return {
      type: bars ? "bar" : "line",
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: {
            display: !spark && data.modes.length > 1,
            position: "bottom",
            labels: {
              boxWidth: 12,
              boxHeight: 12,
              // A line's area is shaded lightly; its legend box shows the line's own colour.
              generateLabels: function (chart) {
                return window.Chart.defaults.plugins.legend.labels.generateLabels(chart).map(function (item) {
                  item.fillStyle = item.strokeStyle;
                  return item;
                });
              },
            },
          },
          tooltip: {
            callbacks: {
              title: function (items) {
                return items.length ? dayLabel(data.labels[items[0].dataIndex], true) : "";
              },
            },
          },
        },
        scales: {
          x: {
            stacked: spark,
            grid: { display: false },
            ticks: {
              autoSkip: true,
              maxTicksLimit: spark ? 7 : 10,
              maxRotation: 0,
              callback: function (value) {
                return dayLabel(data.labels[value], false);
              },
            },
          },
          y: {
            stacked: spark,
            beginAtZero: true,
            display: !spark,
            ticks: { precision: 0 },
            grid: { color: "#eceff4" },
          },
        },
      },
    };
  }

  function draw(canvas) {
    if (canvas.dataset.drawn || typeof window.Chart === "undefined") return;
    const data = readData(canvas.dataset.chart);
    if (!data) return;
    canvas.dataset.drawn = "true";
    new window.Chart(canvas, chartConfig(data, canvas.dataset.measure, canvas.dataset.kind === "spark"));
  }

  function drawIn(root) {
    if (root.matches && root.matches("canvas[data-chart]")) draw(root);
    if (root.querySelectorAll) root.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawIn(document);
  });
  // htmx announces every piece of content it swaps in.
  document.addEventListener("htmx:load", function (event) {
    drawIn(event.target);
  });
})();
