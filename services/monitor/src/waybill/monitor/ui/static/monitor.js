// The monitor's pages: charts of the figures the page was rendered with, then live figures
// from the server-sent events of /ui/stream (the overview only).
(function () {
  "use strict";
  const block = document.getElementById("figures");
  if (!block) return;
  const figures = JSON.parse(block.textContent);
  const charts = {};

  function bar(id, counts, label) {
    const canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") return;
    const names = Object.keys(counts).sort();
    charts[id] = new Chart(canvas, {
      type: "bar",
      data: { labels: names, datasets: [{ label: label, data: names.map((n) => counts[n]), backgroundColor: "#2357c5" }] },
      options: { animation: false, indexAxis: names.length > 6 ? "y" : "x", plugins: { legend: { display: false } },
                 scales: { x: { ticks: { precision: 0 } }, y: { ticks: { precision: 0 } } } },
    });
  }
  function update(id, counts) {
    const chart = charts[id];
    if (!chart) return;
    const names = Object.keys(counts).sort();
    chart.data.labels = names;
    chart.data.datasets[0].data = names.map((n) => counts[n]);
    chart.update();
  }

  // Stacked bars: one dataset per series ([{label, values: {name: value}}]), in their order.
  function stacked(id, series, colours) {
    const canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") return;
    const names = [...new Set(series.flatMap((s) => Object.keys(s.values)))].sort();
    const datasets = series.map((s, i) => (
      { label: s.label, data: names.map((n) => s.values[n] || 0), backgroundColor: colours[i % colours.length] }));
    charts[id] = new Chart(canvas, {
      type: "bar",
      data: { labels: names, datasets: datasets },
      options: { animation: false, indexAxis: names.length > 6 ? "y" : "x",
                 scales: { x: { stacked: true, ticks: { precision: 0 } }, y: { stacked: true, ticks: { precision: 0 } } } },
    });
  }

  bar("chart-orders", (figures.orders || {}).by_status || {}, "orders");
  bar("chart-failures", (figures.dead_letters || {}).by_failure_type || {}, "dead letters");
  bar("chart-duplicates", figures.duplicate_rate_percent || {}, "duplicate rate (%)");
  stacked("chart-integrations", figures.calls || [], ["#2357c5", "#b3261e"]);

  const live = document.getElementById("live");
  if (!live || typeof EventSource === "undefined") return;

  function at(data, path) {
    return path.split(".").reduce((node, key) => (node == null ? undefined : node[key]), data);
  }
  function format(value, kind) {
    if (kind === "cents") return (value / 100).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    if (kind === "percent") return value == null ? "no deliveries" : (value * 100).toFixed(1) + " %";
    return String(value);
  }
  function leaves(data, prefix, out) {
    for (const [key, value] of Object.entries(data)) {
      const path = prefix ? prefix + "." + key : key;
      if (value !== null && typeof value === "object") leaves(value, path, out);
      else out.push(path);
    }
    return out;
  }
  const shown = new Set([...document.querySelectorAll("[data-figure]")].map((el) => el.dataset.figure));
  const source = new EventSource("/ui/stream");
  source.addEventListener("overview", (event) => {
    const data = JSON.parse(event.data);
    live.hidden = false;
    // A figure the page has no place for yet (a new status): render the page again.
    const counts = leaves({ orders: data.orders, shipments: data.shipments, payments: data.payments,
      revenue: data.revenue, notifications: data.notifications, dead_letters: data.dead_letters }, "", []);
    if (counts.some((path) => !shown.has(path))) { source.close(); window.location.reload(); return; }
    document.querySelectorAll("[data-figure]").forEach((el) => {
      const value = at(data, el.dataset.figure);
      if (value !== undefined) el.textContent = format(value, el.dataset.format);
    });
    update("chart-orders", data.orders.by_status);
    update("chart-failures", data.dead_letters.by_failure_type);
  });
  source.addEventListener("logged_out", () => { source.close(); window.location.assign("/"); });
  source.onerror = () => { live.hidden = true; };
})();
