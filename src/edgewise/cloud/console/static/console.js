// Draws every chart (a <figure data-chart> holding its data as JSON) with uPlot, on load and after htmx swaps.
(function () {
  "use strict";
  var colors = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490"];

  function draw(figure) {
    if (figure.dataset.drawn) { return; }
    var source = figure.querySelector('script[type="application/json"]');
    if (!source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var series = [{}];
    var columns = [data.x];
    data.series.forEach(function (line, index) {
      series.push({ label: line.label, stroke: colors[index % colors.length], width: 2, spanGaps: true });
      columns.push(line.values);
    });
    var width = Math.max(320, figure.clientWidth - 20);
    new uPlot({ width: width, height: 260, series: series }, columns, figure);
    figure.dataset.drawn = "1";
  }

  function drawAll() {
    document.querySelectorAll("figure[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
  window.edgewiseDrawCharts = drawAll;
}());
