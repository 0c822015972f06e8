// The capacity page: a bar chart of each postal code's utilisation (hotspots in red), drawn
// from the figures the page was rendered with.
(function () {
  "use strict";
  const block = document.getElementById("capacity-figures");
  const canvas = document.getElementById("chart-utilisation");
  if (!block || !canvas || typeof Chart === "undefined") return;
  const figures = JSON.parse(block.textContent);
  const codes = figures.postal_codes;
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: codes.map((c) => c.postal_code),
      datasets: [{
        label: "utilisation %",
        data: codes.map((c) => Math.round(c.utilisation * 1000) / 10),
        backgroundColor: codes.map((c) => (c.hotspot ? "#b3261e" : "#2357c5")),
      }],
    },
    options: {
      animation: false,
      indexAxis: codes.length > 6 ? "y" : "x",
      plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true }, y: { beginAtZero: true } },
    },
  });
})();
