/* reportgen: draws the figures, wires region clicks to patches, saves the embedded results.
   All data comes from <script type="application/json"> blocks, parsed with JSON.parse. */
(function () {
  "use strict";

  function parsed(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // The results are the single source of the report's data, pictures included. User text (image names,
  // column names, group values) only ever reaches the page through textContent and setAttribute.
  var results = parsed("reportgen-results") || {};
  var own = Object.prototype.hasOwnProperty;

  function lookup(value, path) {
    for (var i = 0; i < path.length; i++) {
      if (value === null || typeof value !== "object" || !own.call(value, path[i])) return null;
      value = value[path[i]];
    }
    return value;
  }

  function isPicture(uri) {
    return typeof uri === "string" && /^data:image\/(jpeg|png|gif|webp);base64,/.test(uri);
  }

  // Every <img data-picture='["patches","left_eye",0,"uri"]'> gets its data URI from the results.
  document.querySelectorAll("img[data-picture]").forEach(function (img) {
    var uri = lookup(results, JSON.parse(img.getAttribute("data-picture")));
    if (isPicture(uri)) img.src = uri;
  });

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // How numbers read: the rule of reportgen/report/format.py (percent_text, probability_text), mirrored so
  // the pictures' facts and the image browser say what the tables say. toFixed rounds ties away from zero,
  // as format.fixed does; tests/number_cases.py holds the cases both sides are tested on.
  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function percent(value) {
    if (!isNumber(value)) return "–";
    var p = 100 * value;
    if (p === 0) return "0%";
    if (p < 0.05) return "<0.1%";
    return (p < 9.95 ? p.toFixed(1).replace(/\.0$/, "") : p.toFixed(0)) + "%";
  }

  function probability(value) {
    return isNumber(value) ? value.toFixed(2) : "–";
  }

  // Read-only, for the tests and the browser console: the page's own formatters.
  window.reportgen = Object.freeze({format: Object.freeze({percent: percent, probability: probability})});

  function shown(value) {
    return value === null || value === undefined || value === "" ? "–" : String(value);
  }

  function regionLabel(id) {
    var rows = results.regions || [];
    for (var i = 0; i < rows.length; i++) if (rows[i] && rows[i].id === id) return rows[i].label || id;
    return id;
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
  var calm = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

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
      if (box.top > window.innerHeight || box.bottom < 0) detail.scrollIntoView({behavior: calm ? "auto" : "smooth", block: "nearest"});
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

  // ---- the whole-image view: a patch or a browser thumbnail opens it -------------------------------------

  var dialog = document.getElementById("image-view");
  var viewer = {items: [], index: 0};

  function fact(list, name, value) {
    list.appendChild(element("dt", null, name));
    list.appendChild(element("dd", null, value));
  }

  // item: {view: key of results.views or null, record: a browser record or null, region, score, context}
  function showItem() {
    var item = viewer.items[viewer.index];
    if (!item) return;
    var views = results.views || {};
    var record = item.record || {};
    // A browser image that is also among the top patches has a whole-image view too.
    var key = item.view !== null ? item.view : record.image;
    var view = typeof key === "string" && own.call(views, key) ? views[key] : null;
    var info = view || record;
    var name = item.view !== null ? item.view : record.image;
    document.getElementById("viewer-title").textContent = shown(name);
    document.getElementById("viewer-context").textContent = item.context || "";
    var attention = document.getElementById("viewer-attention");
    var regions = document.getElementById("viewer-regions");
    var attentionUri = view ? view.uri : record.uri;
    attention.removeAttribute("src");
    regions.removeAttribute("src");
    if (isPicture(attentionUri)) attention.src = attentionUri;
    var hasRegions = view && isPicture(view.regions_uri);
    if (hasRegions) regions.src = view.regions_uri;
    document.getElementById("viewer-regions-figure").hidden = !hasRegions;
    document.getElementById("viewer-legend").hidden = !hasRegions;
    dialog.classList.toggle("thumbnail-only", !view);

    var facts = document.getElementById("viewer-facts");
    facts.textContent = "";
    var label = info.label, prediction = info.prediction;
    fact(facts, "Label", shown(label));
    var predicted = shown(prediction);
    if (label !== null && label !== undefined && prediction !== null && prediction !== undefined) {
      predicted += String(label) === String(prediction) ? " · correct" : " · wrong";
    }
    fact(facts, "Prediction", predicted);
    fact(facts, "Probability", probability(info.probability));
    var groups = info.groups || record.groups || {};
    Object.keys(groups).forEach(function (column) { fact(facts, column, shown(groups[column])); });
    if (item.region) fact(facts, "Share in " + regionLabel(item.region).toLowerCase(), percent(item.score));

    var shares = document.getElementById("viewer-shares");
    shares.textContent = "";
    var ids = (results.browser && results.browser.regions) || [];
    if (record.shares && record.shares.length === ids.length) {
      shares.appendChild(element("h4", null, "Where this image's attention falls"));
      var order = ids.map(function (id, i) { return [id, record.shares[i]]; })
        .sort(function (a, b) { return b[1] - a[1]; }).slice(0, 6);
      var top = order.length ? Math.max(order[0][1], 1e-9) : 1;
      order.forEach(function (pair) {
        var row = element("div", "share-row");
        row.appendChild(element("span", "share-name", regionLabel(pair[0])));
        var bar = element("span", "share-bar");
        var fill = element("i");
        fill.style.width = Math.max(0, Math.min(100, 100 * pair[1] / top)).toFixed(1) + "%";
        bar.appendChild(fill);
        row.appendChild(bar);
        row.appendChild(element("span", "share-value", percent(pair[1])));
        shares.appendChild(row);
      });
    }
    document.getElementById("viewer-note").textContent = view ? "" :
      "A thumbnail: whole-image views with the face regions are kept for the images among the top patches.";
    document.getElementById("viewer-position").textContent =
      viewer.items.length > 1 ? (viewer.index + 1) + " of " + viewer.items.length : "";
    document.getElementById("viewer-previous").disabled = viewer.index <= 0;
    document.getElementById("viewer-next").disabled = viewer.index >= viewer.items.length - 1;
  }

  function openViewer(items, index) {
    if (!dialog || !items.length) return;
    viewer.items = items;
    viewer.index = Math.max(0, Math.min(index, items.length - 1));
    showItem();
    if (!dialog.open) {
      if (typeof dialog.showModal === "function") dialog.showModal(); else dialog.setAttribute("open", "");
    }
  }

  function step(delta) {
    var next = viewer.index + delta;
    if (next < 0 || next >= viewer.items.length) return;
    viewer.index = next;
    showItem();
  }

  if (dialog) {
    document.getElementById("viewer-close").addEventListener("click", function () { dialog.close(); });
    document.getElementById("viewer-previous").addEventListener("click", function () { step(-1); });
    document.getElementById("viewer-next").addEventListener("click", function () { step(1); });
    dialog.addEventListener("keydown", function (event) {
      if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
      if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
    });
    // A click on the backdrop (outside the dialog's box) closes it.
    dialog.addEventListener("click", function (event) {
      if (event.target !== dialog) return;
      var box = dialog.getBoundingClientRect();
      if (event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom) {
        dialog.close();
      }
    });
  }

  // Patches, wherever they are shown (their region's list or the panel under the map), open their grid.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.patch-open");
    if (!button) return;
    var grid = button.closest(".patch-grid");
    var buttons = grid ? Array.prototype.slice.call(grid.querySelectorAll("button.patch-open")) : [button];
    var items = buttons.map(function (b) {
      var region = b.getAttribute("data-region");
      return {view: b.getAttribute("data-view"), record: null, region: region,
              score: parseFloat(b.getAttribute("data-score")), context: "Top patch · " + regionLabel(region)};
    });
    openViewer(items, buttons.indexOf(button));
  });

  // ---- the image browser --------------------------------------------------------------------------------

  var grid = document.getElementById("browser-grid");
  var browser = results.browser;
  if (grid && browser && browser.images) {
    var sortSelect = document.getElementById("browser-sort");
    var orderButton = document.getElementById("browser-order");
    var count = document.getElementById("browser-count");
    var descending = true;
    var regionIds = browser.regions || [];
    var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
    var images = browser.images.filter(function (r) { return r && typeof r === "object"; });

    var sortKey = function () {
      var option = sortSelect.options[sortSelect.selectedIndex];
      return {kind: option.value, key: option.getAttribute("data-key")};
    };

    var wrong = function (r) {
      return r.label !== null && r.label !== undefined && String(r.label) !== String(r.prediction);
    };

    // The value a tile is sorted by, and how it is shown on the tile.
    var valueOf = function (r, sort) {
      switch (sort.kind) {
        case "prediction": return r.prediction;
        case "label": return r.label;
        case "correct": return wrong(r) ? 1 : 0;
        case "group": return r.groups && own.call(r.groups, sort.key) ? r.groups[sort.key] : null;
        case "region":
          var i = regionIds.indexOf(sort.key);
          return i >= 0 && r.shares ? r.shares[i] : null;
        default: return r.probability;
      }
    };

    var compare = function (a, b) {
      if (a === b) return 0;
      if (a === null || a === undefined) return 1;  // missing values last, whatever the order
      if (b === null || b === undefined) return -1;
      if (typeof a === "number" && typeof b === "number") return a - b;
      return collator.compare(String(a), String(b));
    };

    var render = function () {
      var sort = sortKey();
      var rows = images.map(function (r, i) { return {r: r, i: i, v: valueOf(r, sort)}; });
      rows.sort(function (x, y) {
        var missing = (x.v === null || x.v === undefined) - (y.v === null || y.v === undefined);
        if (missing) return missing;
        var c = compare(x.v, y.v);
        if (c !== 0) return descending ? -c : c;
        return (y.r.probability || 0) - (x.r.probability || 0) || x.i - y.i;
      });
      grid.textContent = "";
      var items = rows.map(function (row) {
        return {view: null, record: row.r, context: "Image browser" + (browser.sampled && row.r.why ? " · " + row.r.why : "")};
      });
      rows.forEach(function (row, position) {
        var r = row.r;
        var tile = element("button", "tile" + (wrong(r) ? " wrong" : ""));
        tile.type = "button";
        tile.setAttribute("data-image", shown(r.image));
        tile.setAttribute("data-value", row.v === null || row.v === undefined ? "" : String(row.v));
        tile.title = shown(r.image);
        var img = element("img");
        img.width = 96;
        img.height = 96;
        img.alt = "Attention on " + shown(r.image);
        if (isPicture(r.uri)) img.src = r.uri;
        tile.appendChild(img);
        var line = element("span", "tile-main");
        line.appendChild(element("strong", null, "pred. " + shown(r.prediction)));
        line.appendChild(document.createTextNode(" · " + probability(r.probability)));
        tile.appendChild(line);
        var detail;
        if (sort.kind === "region") detail = regionLabel(sort.key) + " " + percent(row.v);
        else if (sort.kind === "group") detail = sort.key + " = " + shown(row.v);
        else detail = "label " + shown(r.label) + (wrong(r) ? " · wrong" : "");
        tile.appendChild(element("span", "tile-detail", detail));
        tile.appendChild(element("span", "tile-file", shown(r.image)));
        tile.addEventListener("click", function () { openViewer(items, position); });
        grid.appendChild(tile);
      });
      var numeric = sort.kind === "probability" || sort.kind === "region" || sort.kind === "correct";
      orderButton.textContent = numeric ? (descending ? "Highest first" : "Lowest first") : (descending ? "Z → A" : "A → Z");
      orderButton.setAttribute("aria-pressed", descending ? "true" : "false");
      count.textContent = images.length + (browser.sampled ? " of " + browser.total_seen + " images" : " images");
    };

    sortSelect.addEventListener("change", function () {
      var kind = sortKey().kind;
      descending = kind === "probability" || kind === "region" || kind === "correct";
      render();
    });
    orderButton.addEventListener("click", function () { descending = !descending; render(); });
    render();
  }

  // ---- downloads: made in the page from the embedded results (nothing is fetched) -----------------------

  function save(text, type, name) {
    var blob = new Blob([text], {type: type});
    var url = URL.createObjectURL(blob);
    var link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  var download = document.getElementById("download-results");
  if (download) {
    download.addEventListener("click", function () {
      save(document.getElementById("reportgen-results").textContent, "application/json", "results.json");
    });
  }

  // A CSV cell: numbers as they are, text quoted when needed, and text that a spreadsheet would run as a
  // formula (= + - @ at the start) prefixed with an apostrophe.
  function csvCell(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return isFinite(value) ? String(value) : "";
    var text = String(value);
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  var CSV_COLUMNS = ["id", "label", "group", "share", "share_ci_low", "share_ci_high", "area", "density",
    "ci_low", "ci_high", "n", "effect", "effect_ci_low", "effect_ci_high"];

  function regionsCsv() {
    var lines = [CSV_COLUMNS.join(",")];
    function add(rows, group) {
      (rows || []).forEach(function (r) {
        if (!r || typeof r !== "object") return;
        var share = Array.isArray(r.share_ci) ? r.share_ci : [null, null];
        var ci = Array.isArray(r.ci) ? r.ci : [null, null];
        var effect = Array.isArray(r.effect_ci) ? r.effect_ci : [null, null];
        lines.push([r.id, r.label, group, r.share, share[0], share[1], r.area, r.density, ci[0], ci[1], r.n,
          r.effect, effect[0], effect[1]].map(csvCell).join(","));
      });
    }
    add(results.regions, "all");
    var groups = results.groups || {};
    Object.keys(groups).forEach(function (key) { add((groups[key] || {}).regions, key); });
    return "\ufeff" + lines.join("\r\n") + "\r\n";  // the BOM tells spreadsheets it is UTF-8
  }

  var downloadCsv = document.getElementById("download-regions");
  if (downloadCsv) {
    downloadCsv.addEventListener("click", function () { save(regionsCsv(), "text/csv;charset=utf-8", "regions.csv"); });
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
