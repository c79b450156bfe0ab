// Draws a segment's size over time with Chart.js (static/vendor/chartjs/). The numbers come
// from the JSON data block named by the canvas's data-segment-chart, written by the page with
// Django's json_script (a data block is never executed: nothing for the CSP to refuse):
//   {"labels": ["03 May 14:05", ...], "values": [120, ...]}
(function () {
  "use strict";

  function draw(canvas) {
    if (canvas.dataset.drawn || typeof window.Chart === "undefined") return;
    const block = document.getElementById(canvas.dataset.segmentChart);
    if (!block) return;
    const data = JSON.parse(block.textContent);
    canvas.dataset.drawn = "true";
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [{
          label: "Members",
          data: data.values,
          borderColor: "#3654d6",
          backgroundColor: "#3654d61f",
          fill: "origin",
          borderWidth: 2,
          stepped: true,
          pointRadius: data.values.length > 45 ? 0 : 2.5,
          pointBackgroundColor: "#3654d6",
        }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: false } },
        scales: {
          x: { grid: { display: false }, ticks: { autoSkip: true, maxTicksLimit: 8, maxRotation: 0 } },
          y: { beginAtZero: true, ticks: { precision: 0 }, grid: { color: "#eceff4" } },
        },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-segment-chart]").forEach(draw);
  });
})();
