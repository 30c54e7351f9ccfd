// Draws each chart with uPlot from the JSON embedded beside it; without JS the data tables remain.
(function () {
  "use strict";
  if (typeof uPlot === "undefined") return;
  var fmt = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 1 });
  var charts = [];

  function options(data, width) {
    var labels = data.labels;
    var series = [{ label: data.xTitle || "", value: function (u, v) { return v == null ? "" : labels[v]; } }];
    data.series.forEach(function (s) {
      series.push({
        label: s.label,
        stroke: s.color,
        width: 2,
        fill: data.bars ? s.color : undefined,
        paths: data.bars ? uPlot.paths.bars({ size: [0.6, 60] }) : undefined,
        points: { show: !data.bars, size: 5 },
        value: function (u, v) { return v == null ? "–" : fmt.format(v); },
      });
    });
    return {
      width: width,
      height: 280,
      series: series,
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: function (u, min, max) { return [0, max * 1.1 || 1]; } } },
      axes: [
        { values: function (u, splits) { return splits.map(function (v) { return Number.isInteger(v) ? (labels[v] || "") : ""; }); }, stroke: "#1a1a1a" },
        { values: function (u, splits) { return splits.map(function (v) { return fmt.format(v); }); }, stroke: "#1a1a1a", label: data.unit, size: 70 },
      ],
      cursor: { drag: { x: false, y: false } },
    };
  }

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source) return;
    var data = JSON.parse(source.textContent);
    el.textContent = "";
    var columns = [data.x].concat(data.series.map(function (s) { return s.values; }));
    charts.push({ el: el, plot: new uPlot(options(data, el.clientWidth || 600), columns, el) });
  });

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      charts.forEach(function (c) { c.plot.setSize({ width: c.el.clientWidth || 600, height: 280 }); });
    }, 150);
  });
})();
