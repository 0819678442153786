/* The home page's charts, drawn by the vendored Chart.js (static/vendor/chart.umd.min.js, MIT) from the
   data-chart attribute of each canvas (the Content-Security-Policy allows no inline script). The figures
   are also in the table beside each chart: the chart is for looking, the table for reading.
   On a right-to-left page the category axis runs right to left, the value axis stands on the right and
   the legend and tooltips are laid out right to left. */
(function () {
  "use strict";

  function draw(canvas) {
    var spec;
    try { spec = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
    var rtl = canvas.getAttribute("data-dir") === "rtl";
    var box = canvas.parentElement;
    var rem = parseFloat(box.getAttribute("data-rem") || "");
    if (rem) { box.style.height = rem + "rem"; }
    var horizontal = !!spec.horizontal;
    var font = getComputedStyle(document.body).fontFamily;
    var category = { stacked: !!spec.stacked, reverse: rtl && !horizontal, grid: { display: false },
                     ticks: { font: { family: font } } };
    var value = { stacked: !!spec.stacked, beginAtZero: true, reverse: rtl && horizontal,
                  position: horizontal ? "bottom" : (rtl ? "right" : "left"),
                  ticks: { precision: 0, font: { family: font } } };
    if (horizontal) { category.position = rtl ? "right" : "left"; }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: spec.datasets.map(function (d) { d.maxBarThickness = 90; return d; }) },
      options: {
        indexAxis: horizontal ? "y" : "x",
        maintainAspectRatio: false,
        responsive: true,
        animation: false,
        locale: document.documentElement.lang === "ur" ? "ur-PK-u-nu-latn" : "en-PK",
        scales: horizontal ? { x: value, y: category } : { x: category, y: value },
        plugins: {
          legend: { display: spec.legend !== false, rtl: rtl, textDirection: rtl ? "rtl" : "ltr",
                    labels: { font: { family: font } } },
          tooltip: { rtl: rtl, textDirection: rtl ? "rtl" : "ltr" }
        }
      }
    });
    canvas.setAttribute("data-drawn", "true");  // for tests and tools: this chart is on screen
  }

  function start() {
    if (!window.Chart) { return; }  // the tables beside the charts still say everything
    window.Chart.defaults.color = "#1d2521";
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) { draw(canvases[i]); }
  }

  /* A canvas is drawn once, with the fonts there are at that moment: wait for the page's fonts (the
     bundled Nastaliq on Urdu pages) so the labels are not drawn in a fallback without Urdu letters. */
  function whenFontsReady() {
    var fonts = document.fonts;
    if (!fonts || !fonts.load) { start(); return; }
    var wanted = document.documentElement.lang === "ur" ? fonts.load('12px "ISPS Urdu"', "\u06c1") : Promise.resolve();
    wanted.then(function () { return fonts.ready; }).then(start, start);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", whenFontsReady);
  } else {
    whenFontsReady();
  }
}());
