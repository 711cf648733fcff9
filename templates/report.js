/* reportgen: draws the figures, wires region clicks to patches, saves the embedded results.
   All data comes from <script type="application/json"> blocks, parsed with JSON.parse. */
(function () {
  "use strict";

  function parsed(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // No "Share chart" (it would upload the data to a plotly server) and no links out of the page.
  var plotConfig = {
    displaylogo: false,
    showSendToCloud: false,
    showEditInChartStudio: false,
    showLink: false,
    plotlyServerURL: "",
    responsive: true,
    scrollZoom: false,
    modeBarButtonsToRemove: ["zoom2d", "pan2d", "select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
      "resetScale2d", "toggleSpikelines", "hoverClosestCartesian", "hoverCompareCartesian", "sendChartToCloud"]
  };

  // Which region a click on a figure means: map polygons carry it in meta, bars in customdata.
  function clickedRegion(event) {
    var point = event && event.points && event.points[0];
    if (!point) return null;
    if (point.customdata && point.customdata.length) return point.customdata[0];
    if (point.data && typeof point.data.meta === "string") return point.data.meta;
    return null;
  }

  var detail = document.getElementById("region-detail");

  // Show a region's patches below the map (a copy of its entry in the patches section) and open that entry.
  function showRegion(id, options) {
    var source = document.getElementById("patches-" + id);
    if (!detail) return;
    detail.textContent = "";
    var heading = document.createElement("h3");
    var body;
    if (source) {
      var summary = source.querySelector("summary");
      heading.appendChild(summary.querySelector(".name").cloneNode(true));
      var stats = summary.querySelector(".stats");
      if (stats) heading.appendChild(stats.cloneNode(true));
      var grid = source.querySelector(".patch-grid");
      body = grid ? grid.cloneNode(true) : document.createElement("p");
      if (!grid) { body.className = "muted"; body.textContent = "No patches recorded for this region."; }
      if (!(options && options.quiet)) source.open = true;
    } else {
      heading.textContent = id;
      body = document.createElement("p");
      body.className = "muted";
      body.textContent = "No patches recorded for this region.";
    }
    detail.appendChild(heading);
    detail.appendChild(body);
    if (source) {
      var link = document.createElement("a");
      link.href = "#patches-" + id;
      link.className = "more";
      link.textContent = "Open in the list of all regions' patches";
      detail.appendChild(link);
    }
    detail.setAttribute("data-region", id);
    if (!(options && options.quiet)) {
      var box = detail.getBoundingClientRect();
      if (box.top > window.innerHeight || box.bottom < 0) detail.scrollIntoView({behavior: "smooth", block: "nearest"});
    }
  }

  document.querySelectorAll("[data-figure]").forEach(function (div) {
    var figure = parsed(div.getAttribute("data-figure"));
    if (!figure || typeof Plotly === "undefined") return;
    // With responsive: true plotly fills its box, so the box must be as tall as the figure.
    if (figure.layout && figure.layout.height) div.style.height = figure.layout.height + "px";
    var config = Object.assign({}, plotConfig, {toImageButtonOptions: {
      format: "png", scale: 2, filename: div.getAttribute("data-figure").replace(/^figure-/, "")}});
    Plotly.newPlot(div, figure.data, figure.layout, config).then(function (graph) {
      if (div.hasAttribute("data-region-click")) {
        graph.on("plotly_click", function (event) {
          var id = clickedRegion(event);
          if (id) showRegion(id);
        });
      }
    });
  });

  // Start with the top-ranked region's patches under the map.
  var first = document.querySelector("details.patches");
  if (first) showRegion(first.getAttribute("data-region"), {quiet: true});

  // A link to a region's patches opens them.
  window.addEventListener("hashchange", function () {
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === "DETAILS") target.open = true;
  });

  var download = document.getElementById("download-results");
  if (download) {
    download.addEventListener("click", function () {
      var text = document.getElementById("reportgen-results").textContent;
      var blob = new Blob([text], {type: "application/json"});
      var url = URL.createObjectURL(blob);
      var link = document.createElement("a");
      link.href = url;
      link.download = "results.json";
      document.body.appendChild(link);
      link.click();
      document.body.removeChild(link);
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
  }

  // Printing shows everything: open every collapsed section, and close them again afterwards.
  // Figures are redrawn to the printed width, and to the window's again afterwards.
  var reopened = [];
  function resizeFigures() {
    document.querySelectorAll("[data-figure]").forEach(function (div) {
      if (div._fullLayout) Plotly.Plots.resize(div);
    });
  }
  window.addEventListener("beforeprint", function () {
    reopened = Array.prototype.filter.call(document.querySelectorAll("details:not([open])"), function (d) {
      d.open = true;
      return true;
    });
    resizeFigures();
  });
  window.addEventListener("afterprint", function () {
    reopened.forEach(function (d) { d.open = false; });
    reopened = [];
    resizeFigures();
  });
})();
