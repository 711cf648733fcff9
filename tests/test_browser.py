"""The report in a real browser (headless Debian Chromium driven by playwright): it loads offline without
errors, its maps, patches, whole-image view, image browser and downloads work, and text from the data
(image names, column names, group values) never runs as code.

Skipped when playwright or Chromium is missing, except in CI (the CI environment variable is set), where
that is a failure: ``.ci/run`` installs Chromium. ``REPORTGEN_CHROMIUM`` names another Chromium binary.
Screenshots go to ``test-output/`` at the top of the repository.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import number_cases
from report_fixture import build_results, region_ablation, verification
from reportgen.faces.regions import PAINT_ORDER
from reportgen.report import write_html
from reportgen.results.findings import findings, times_text

# Starting Chromium and drawing every figure takes seconds per page: the quick run (-m "not slow") leaves these out.
pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions"]
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
FIGURES_DRAWN = "[...document.querySelectorAll('[data-figure]')].every(d => d._fullLayout && d.querySelector('.main-svg'))"

# Where a region's polygon centre is on a map, in viewport pixels (the figure is scrolled into view first).
REGION_POINT_JS = """
([figure, region, axis, below]) => {
  const div = document.querySelector(`[data-figure="${figure}"]`);
  const trace = div && div._fullData.find(t => t.meta === region && (t.xaxis || 'x') === axis);
  if (!trace) return null;
  const xs = trace.x.filter(v => v !== null), ys = trace.y.filter(v => v !== null);
  const cx = xs.reduce((a, b) => a + b, 0) / xs.length;
  // the vertices' mean, or (for a region whose middle lies under others, such as the hair) a point
  // `below` canvas pixels under its top
  const cy = below ? Math.min(...ys) + below : ys.reduce((a, b) => a + b, 0) / ys.length;
  const box = div.getBoundingClientRect();
  const xa = div._fullLayout[axis === 'x' ? 'xaxis' : 'xaxis' + axis.slice(1)];
  const ya = div._fullLayout[axis === 'x' ? 'yaxis' : 'yaxis' + axis.slice(1)];
  return {x: box.left + xa._offset + xa.l2p(cx), y: box.top + ya._offset + ya.l2p(cy)};
}
"""


def _chromium() -> str | None:
    candidates = [os.environ.get("REPORTGEN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.path.exists(c)), None)


def _missing() -> str | None:
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if _chromium() is None:
        return "Chromium is not installed (apt-get install chromium), so the report cannot be opened in a browser"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI, but {missing}", pytrace=False)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=ARGS, headless=True)
        yield chromium
        chromium.close()


class Watched:
    """A page with everything it logged, every error and every request it made."""

    def __init__(self, browser, path: Path):
        # Reduced motion: the report then scrolls without animation, so positions are final at once.
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                           reduced_motion="reduce")
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.url = path.resolve().as_uri()
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(self.url, wait_until="load")
        self.page.wait_for_function(FIGURES_DRAWN, timeout=20000)

    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if url != self.url and not url.startswith(("data:", "blob:"))]

    def problems(self) -> list[str]:
        return [line for line in self.console if line.startswith(("error", "warning"))] + self.errors


@pytest.fixture(scope="module")
def results():
    return build_results()


@pytest.fixture(scope="module")
def report(browser, results, tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "report.html"
    write_html(results, path)
    watched = Watched(browser, path)
    yield watched
    watched.context.close()


def region_point(page, figure: str, region: str, axis: str = "x", below: float | None = None) -> dict:
    page.locator(f'[data-figure="{figure}"]').scroll_into_view_if_needed()
    page.wait_for_timeout(100)
    point = page.evaluate(REGION_POINT_JS, [figure, region, axis, below])
    assert point is not None, f"{region} is not on {figure}"
    return point


def hover_text(page, expected: str) -> str:
    """The hover label once it names ``expected`` (plotly throttles hover events, so it can lag a move)."""
    page.wait_for_function("(text) => [...document.querySelectorAll('.hovertext')]"
                           ".some(n => n.textContent.includes(text))", arg=expected, timeout=5000)
    return " ".join(page.eval_on_selector_all(".hovertext", "ns => ns.map(n => n.textContent)"))


def close_viewer(page):
    if page.evaluate("document.getElementById('image-view').open"):
        page.keyboard.press("Escape")
        page.wait_for_function("!document.getElementById('image-view').open")


def test_page_loads_offline_without_errors(report):
    assert report.problems() == []
    assert report.remote_requests() == []
    drawn = report.page.eval_on_selector_all("[data-figure]", "ds => ds.map(d => !!d._fullLayout)")
    assert len(drawn) >= 4 and all(drawn)
    # every picture came from the embedded results and decoded
    pictures = report.page.eval_on_selector_all(
        "img[data-picture]", "imgs => imgs.map(i => [i.src.slice(0, 23), i.complete && i.naturalWidth > 0])")
    assert pictures and all(p == ["data:image/jpeg;base64,", True] for p in pictures)


def test_the_inlined_plotly_registers_every_trace_type_the_figures_draw(report):
    types = report.page.evaluate("""() => {
        const registered = Object.keys(Plotly.PlotSchema.get().traces);
        const drawn = [...document.querySelectorAll('[data-figure]')].flatMap(d => d._fullData.map(t => t.type));
        return {registered, drawn: [...new Set(drawn)]};
    }""")
    assert {"bar", "scatter", "heatmap"} <= set(types["drawn"]) <= set(types["registered"])
    assert "scattergeo" not in types["registered"]  # the partial bundle, not the full one


def test_region_map_has_one_filled_trace_per_region(report, results):
    traces = report.page.evaluate("""() => document.querySelector('[data-figure="figure-region-map"]')._fullData
        .filter(t => t.meta).map(t => [t.meta, t.fill, t.hoveron])""")
    expected = [r for r in PAINT_ORDER if r == "background" or r in results["canonical_face"]["polygons"]]
    assert [meta for meta, _, _ in traces] == expected  # one each, in paint order
    assert all(fill == "toself" and hoveron == "fills" for _, fill, hoveron in traces)


def test_hovering_a_region_shows_its_name_and_density(report, results):
    page = report.page
    point = region_point(page, "figure-region-map", "left_eye")
    page.mouse.move(point["x"], point["y"], steps=4)
    hover = hover_text(page, "Left eye")
    row = next(r for r in results["regions"] if r["id"] == "left_eye")
    assert "Left eye" in hover and f"{times_text(row['density'])}× an even spread" in hover


def test_clicking_a_region_shows_its_patches(report, results):
    page = report.page
    point = region_point(page, "figure-region-map", "nose")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function("document.getElementById('region-detail').dataset.region === 'nose'", timeout=5000)
    shown = page.eval_on_selector_all("#region-detail button.patch-open", "bs => bs.map(b => b.dataset.view)")
    assert shown == [p["view"] for p in results["patches"]["nose"]]
    assert page.evaluate("document.getElementById('patches-nose').open")


def test_clicking_a_patch_opens_its_whole_image_view(report, results):
    page = report.page
    patches = results["patches"]["nose"]
    page.locator("#region-detail button.patch-open").first.click()
    page.wait_for_function("document.getElementById('image-view').open")
    view = results["views"][patches[0]["view"]]
    assert page.text_content("#viewer-title") == patches[0]["image"]
    assert page.get_attribute("#viewer-attention", "src") == view["uri"]
    assert page.get_attribute("#viewer-regions", "src") == view["regions_uri"]
    assert page.evaluate("document.getElementById('viewer-regions').naturalWidth") > 0
    facts = page.text_content("#viewer-facts")
    assert f"Label{view['label']}" in facts and f"Prediction{view['prediction']}" in facts
    assert f"Probability{view['probability']:.2f}" in facts and "Share in nose" in facts
    page.keyboard.press("ArrowRight")
    assert page.text_content("#viewer-title") == patches[1]["image"]
    assert page.text_content("#viewer-position") == f"2 of {len(patches)}"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "report-image-view.png"))
    close_viewer(page)


def tile_values(page) -> list[str]:
    return page.eval_on_selector_all("#browser-grid .tile", "ts => ts.map(t => t.dataset.value)")


def choose(page, value: str, key: str | None = None) -> None:
    index = page.evaluate("([v, k]) => [...document.querySelectorAll('#browser-sort option')]"
                          ".findIndex(o => o.value === v && (k === null || o.dataset.key === k))", [value, key])
    assert index >= 0, (value, key)
    page.select_option("#browser-sort", index=index)


def test_image_browser_sorts_a_representative_sample(report, results):
    page = report.page
    browser = results["browser"]
    page.locator("#browser").scroll_into_view_if_needed()
    assert page.text_content("#browser-count") == f"{len(browser['images'])} of {browser['total_seen']} images"
    probabilities = [float(v) for v in tile_values(page)]
    assert probabilities == sorted((r["probability"] for r in browser["images"]), reverse=True)

    choose(page, "region", "left_eye")
    index = browser["regions"].index("left_eye")
    shares = [float(v) for v in tile_values(page)]
    assert shares == sorted((r["shares"][index] for r in browser["images"]), reverse=True)
    assert "Left eye" in page.text_content("#browser-grid .tile .tile-detail")
    page.click("#browser-order")
    assert [float(v) for v in tile_values(page)] == sorted(shares)

    choose(page, "group", "protected")
    groups = tile_values(page)
    assert groups == sorted(groups) and set(groups) == {"0", "1"}
    choose(page, "correct")
    wrong = [r for r in browser["images"] if r["label"] != str(r["prediction"])]
    assert tile_values(page)[:len(wrong)] == ["1"] * len(wrong) and "0" in tile_values(page)

    choose(page, "probability")
    tiles = page.locator("#browser-grid .tile")
    name = tiles.nth(1).get_attribute("data-image")
    assert name not in results["views"]
    tiles.nth(1).click()  # only a thumbnail: shown with where its attention falls
    page.wait_for_function("document.getElementById('image-view').open")
    assert page.text_content("#viewer-title") == name
    assert page.locator("#viewer-shares .share-row").count() == 6
    assert not page.is_visible("#viewer-regions") and "thumbnail" in page.text_content("#viewer-note")
    page.keyboard.press("ArrowLeft")  # the most confident image is also among the top patches: its full view
    name = tiles.nth(0).get_attribute("data-image")
    assert page.text_content("#viewer-title") == name and name in results["views"]
    assert page.get_attribute("#viewer-regions", "src") == results["views"][name]["regions_uri"]
    assert page.is_visible("#viewer-regions") and page.locator("#viewer-shares .share-row").count() == 6
    close_viewer(page)


def test_downloads_are_made_in_the_page(report, results):
    page = report.page
    page.locator("#data").scroll_into_view_if_needed()
    with page.expect_download(timeout=10000) as info:
        page.click("#download-regions")
    download = info.value
    assert download.suggested_filename == "regions.csv"
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["id", "label", "group", "share", "share_ci_low", "share_ci_high", "area", "density",
                             "ci_low", "ci_high", "n", "effect", "effect_ci_low", "effect_ci_high"]
    assert {r["effect"] for r in rows} == {""}  # Grad-CAM has no effects
    groups = results["groups"]
    assert len(rows) == len(results["regions"]) + sum(len(g["regions"]) for g in groups.values())
    assert [r["group"] for r in rows[:len(results["regions"])]] == ["all"] * len(results["regions"])
    for row, region in zip(rows, results["regions"]):
        assert row["id"] == region["id"] and row["label"] == region["label"]
        assert float(row["density"]) == region["density"] and float(row["ci_high"]) == region["ci"][1]
        assert float(row["share_ci_low"]) == region["share_ci"][0] and int(row["n"]) == region["n"]
    key = next(iter(groups))
    first = next(r for r in rows if r["group"] == key)
    assert float(first["density"]) == groups[key]["regions"][0]["density"]

    with page.expect_download(timeout=10000) as info:
        page.click("#download-results")
    assert json.loads(Path(info.value.path()).read_text(encoding="utf-8")) == results


def test_the_page_reads_numbers_by_the_rule_of_the_tables(report):
    """report.js's formatters give the text the Python filters give, on the same table of cases
    (tests/number_cases.py), and Python's rounding is the browser's own toFixed."""
    shown = report.page.evaluate("""([percent, probability, similarity, fixed]) => ({
        percent: percent.map(v => window.reportgen.format.percent(v)),
        probability: probability.map(v => window.reportgen.format.probability(v)),
        similarity: similarity.map(v => window.reportgen.format.similarity(v)),
        fixed: fixed.map(([v, d]) => v.toFixed(d))})""",
        [[v for v, _ in number_cases.PERCENT], [v for v, _ in number_cases.PROBABILITY],
         [v for v, _ in number_cases.SIMILARITY], [[v, d] for v, d, _ in number_cases.FIXED]])
    assert shown["percent"] == [text for _, text in number_cases.PERCENT]
    assert shown["probability"] == [text for _, text in number_cases.PROBABILITY]
    assert shown["similarity"] == [text for _, text in number_cases.SIMILARITY]
    assert shown["fixed"] == [text for _, _, text in number_cases.FIXED]


def _painted(png: bytes) -> tuple[int, float]:
    """(distinct colours, fraction of pixels that differ clearly from the top-left corner's colour)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    return colours, float((np.abs(pixels - pixels[2, 2]).sum(-1) > 40).mean())


def test_screenshot_of_the_top_of_the_report(report):
    page = report.page
    page.evaluate("window.scrollTo(0, 0)")
    page.mouse.move(5, 5)
    page.wait_for_timeout(200)
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / "report-top.png"
    png = page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1280, "height": 1800}, full_page=True)
    assert _painted(png)[1] > 0.02  # text and tables, not a blank page
    # Every figure, as the browser paints it, shows something: many colours, and a good part of its box in
    # colours other than its background (a blank, collapsed or unstyled plot would be one or two flat colours).
    figures = page.eval_on_selector_all("[data-figure]", "ds => ds.map(d => d.dataset.figure)")
    assert {"figure-region-map", "figure-mean-map", "figure-ranked"} <= set(figures)
    for figure in figures:
        element = page.locator(f'[data-figure="{figure}"]')
        element.scroll_into_view_if_needed()
        colours, painted = _painted(element.screenshot())
        assert colours > 50 and painted > 0.05, (figure, colours, painted)
    # still nothing fetched, logged or thrown after every interaction above
    assert report.remote_requests() == [] and report.problems() == []


def test_failed_checks_are_shown_and_drawn_without_errors(browser, tmp_path):
    """A region-ablation run whose checks failed: the warning under the lede links to the checks, whose
    charts draw; the region map's hover gives the probability drop; the CSV carries the effects."""
    results = region_ablation(build_results(with_groups=False))
    results["sanity"].update(verdict="failed", rank_correlation=0.86, rank_correlation_ci=[0.8, 0.91])
    results["faithfulness"].update(difference=0.05, difference_ci=[-0.21, 0.3], faithful=False)
    results["findings"] = findings(results)
    path = tmp_path / "failed-checks.html"
    write_html(results, path)
    watched = Watched(browser, path)
    page = watched.page
    try:
        warning = page.locator(".masthead .trust-warning")
        assert warning.is_visible()
        assert "Sanity check failed." in warning.text_content()
        assert "may not be faithful" in warning.text_content()
        warning.locator('a[href="#checks"]').click()
        page.wait_for_function("Math.abs(document.getElementById('checks').getBoundingClientRect().top) < 5",
                               timeout=5000)
        drawn = page.evaluate("['figure-checks-deletion', 'figure-checks-sanity'].map(id => "
                              "{ const d = document.querySelector(`[data-figure=\"${id}\"]`); "
                              "return !!(d && d._fullLayout && d.getBoundingClientRect().height > 100); })")
        assert drawn == [True, True]
        assert page.locator("#check-sanity .verdict.bad").is_visible()
        assert page.locator("#check-deletion .verdict.bad").is_visible()
        OUTPUT.mkdir(exist_ok=True)
        page.locator("#checks").screenshot(path=str(OUTPUT / "report-checks-failed.png"))

        top = results["regions"][0]
        point = region_point(page, "figure-region-map", top["id"])
        page.mouse.move(point["x"], point["y"], steps=4)
        assert "removing it lowers the class probability by 12 points" in hover_text(page, top["label"])

        page.locator("#data").scroll_into_view_if_needed()
        with page.expect_download(timeout=10000) as info:
            page.click("#download-regions")
        rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig"))))
        assert float(rows[0]["effect"]) == top["effect"] and float(rows[0]["effect_ci_high"]) == top["effect_ci"][1]
        assert watched.problems() == [] and watched.remote_requests() == []
    finally:
        watched.context.close()


# -- face verification --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verification_report(browser, tmp_path_factory):
    """A face-verification report; the first left-eye patch's partner is named with a payload."""
    results = verification(build_results())
    first = results["patches"]["left_eye"][0]
    results["views"][first["view"]]["partner"] = first["partner"] = IMG + SCRIPT
    path = tmp_path_factory.mktemp("verification") / "verification.html"
    write_html(results, path)
    watched = Watched(browser, path)
    yield watched, results
    watched.context.close()


def test_a_verification_report_draws_its_quality_figures_without_errors(verification_report):
    watched, results = verification_report
    page = watched.page
    page.locator("#verification").scroll_into_view_if_needed()
    sizes = page.evaluate("""ids => ids.map(id => {
        const d = document.querySelector(`[data-figure="figure-${id}"]`);
        return d && d._fullLayout && d.querySelector('.main-svg') ? d.getBoundingClientRect().height : 0; })""",
                          ["verification-accuracy", "verification-similarity"])
    assert all(height > 100 for height in sizes)
    # the similarity figure: one filled step line per kind of pair and group, in plotly's own data
    traces = page.evaluate("""() => document.querySelector('[data-figure="figure-verification-similarity"]')._fullData
        .filter(t => t.fill === 'tozeroy').map(t => t.line.shape)""")
    assert traces == ["hv"] * 2 * (1 + len(results["verification"]["groups"]))
    assert page.locator("#verification .verification-gap").is_visible()
    OUTPUT.mkdir(exist_ok=True)
    page.locator("#verification").screenshot(path=str(OUTPUT / "report-verification.png"))
    assert watched.problems() == [] and watched.remote_requests() == []


def test_the_viewer_shows_both_images_of_a_pair_side_by_side(verification_report):
    watched, results = verification_report
    page = watched.page
    patch = results["patches"]["left_eye"][0]
    view = results["views"][patch["view"]]
    page.evaluate("document.getElementById('patches-left_eye').open = true")
    page.locator("#patches-left_eye button.patch-open").first.click()
    page.wait_for_function("document.getElementById('image-view').open")
    assert page.get_attribute("#viewer-attention", "src") == view["uri"]
    assert page.get_attribute("#viewer-partner", "src") == view["partner_uri"]
    assert page.get_attribute("#viewer-partner-regions", "src") == view["partner_regions_uri"]
    assert page.evaluate("document.getElementById('viewer-partner').naturalWidth") > 0
    this, other = (page.locator(selector).bounding_box() for selector in ("#viewer-attention", "#viewer-partner"))
    assert other["x"] >= this["x"] + this["width"] and abs(other["y"] - this["y"]) < 2  # side by side
    below = page.locator("#viewer-partner-regions").bounding_box()
    assert abs(below["x"] - other["x"]) < 2 and below["y"] > other["y"] + other["height"] - 2  # its regions under it
    facts = page.text_content("#viewer-facts")
    assert f"Similarity{view['similarity']:.3f}" in facts and f"Compared with{IMG + SCRIPT}" in facts
    assert "Truthdifferent people (impostor pair)" in facts or "Truthsame person (genuine pair)" in facts
    assert "Prediction" not in facts and "Probability" not in facts and "pairgenuine" not in facts
    assert "Other image of the pair: its attention" == page.text_content("#viewer-partner-caption")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "report-verification-view.png"))
    close_viewer(page)
    assert page.evaluate("typeof window.__pwned") == "undefined" and watched.dialogs == []
    assert watched.problems() == [] and watched.remote_requests() == []


def test_browser_tiles_give_the_similarity_and_the_other_image(verification_report):
    watched, results = verification_report
    page = watched.page
    page.locator("#browser").scroll_into_view_if_needed()
    similarities = [float(v) for v in tile_values(page)]
    assert similarities == sorted((r["similarity"] for r in results["browser"]["images"]), reverse=True)
    first = page.locator("#browser-grid .tile").first
    record = next(r for r in results["browser"]["images"] if r["image"] == first.get_attribute("data-image"))
    assert first.locator(".tile-main").text_content() == f"sim. {record['similarity']:.3f}"
    assert first.locator(".tile-partner").text_content() == f"with {record['partner']}"
    options = page.eval_on_selector_all("#browser-sort option", "os => os.map(o => o.value)")
    assert "correct" not in options and "prediction" not in options  # nothing decided without --threshold
    assert page.locator("#browser-grid .tile.wrong").count() == 0
    tile = next(k for k, r in enumerate(page.eval_on_selector_all("#browser-grid .tile", "ts => ts.map(t => t.dataset.image)"))
                if r not in results["views"])
    page.locator("#browser-grid .tile").nth(tile).click()  # only a thumbnail: the partner is named, not shown
    page.wait_for_function("document.getElementById('image-view').open")
    assert "Compared with" in page.text_content("#viewer-facts") and not page.is_visible("#viewer-partner")
    close_viewer(page)
    assert watched.problems() == []


def test_a_reference_run_shows_the_reference_photo_without_a_map(browser, tmp_path):
    results = verification(build_results(), reference=True, threshold=0.5)
    path = tmp_path / "reference.html"
    write_html(results, path)
    watched = Watched(browser, path)
    page = watched.page
    try:
        assert page.evaluate("document.querySelector('.reference-photo img').naturalWidth") > 0
        page.locator("#region-detail button.patch-open").first.click()
        page.wait_for_function("document.getElementById('image-view').open")
        assert page.is_visible("#viewer-partner") and not page.is_visible("#viewer-partner-regions")
        assert page.text_content("#viewer-partner-caption") == "Reference photo (not explained: no map)"
        facts = page.text_content("#viewer-facts")
        assert "Decision" in facts and "Compared with" not in facts
        close_viewer(page)
        options = page.eval_on_selector_all("#browser-sort option", "os => os.map(o => o.value)")
        assert "correct" in options and "prediction" in options  # --threshold: every image is decided
        assert watched.problems() == [] and watched.remote_requests() == []
    finally:
        watched.context.close()


# Payloads in every kind of user text: if any of them ran, a dialog would open, window.__pwned would be
# set, or the browser would request "x" (a relative URL next to the report).
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>window.__pwned=1</script>"
SVG = '"><svg onload=window.__pwned=2>'


def evil_results() -> dict:
    results = build_results(column=SCRIPT)
    renamed = {"0": SVG, "1": IMG}
    # (the column itself holds "=": keys are f"{column}={value}", so they are matched by their start)
    for value, new in renamed.items():
        old_key, new_key = f"{SCRIPT}={value}", f"{SCRIPT}={new}"
        results["groups"][new_key] = dict(results["groups"].pop(old_key), value=new)
        for comparison in results["comparisons"]:
            for side in ("a", "b"):
                if comparison[side] == old_key:
                    comparison[side] = new_key
    for record in results["browser"]["images"]:
        record["groups"][SCRIPT] = renamed[record["groups"][SCRIPT]]
    for view in results["views"].values():
        view["groups"][SCRIPT] = renamed[view["groups"][SCRIPT]]
    # image names: a patch (and the view it opens), a browser image, an example, a failure
    patch = results["patches"]["nose"][0]
    results["views"][IMG + SCRIPT] = results["views"].pop(patch["view"])
    patch["image"] = patch["view"] = IMG + SCRIPT
    for other in results["patches"].values():
        for record in other:
            if record["view"] not in results["views"]:
                record["view"] = IMG + SCRIPT
    results["browser"]["images"][0]["image"] = SVG + IMG
    results["examples"][0]["image"] = SCRIPT + SVG
    results["failures"][0]["image"] = IMG
    results["notes"].append(SCRIPT + IMG)
    results["findings"] = findings(results)
    return results


def test_payloads_in_names_and_groups_never_run(browser, tmp_path):
    results = evil_results()
    path = tmp_path / "evil.html"
    write_html(results, path)
    watched = Watched(browser, path)
    page = watched.page
    try:
        # the payloads show as text wherever they are used
        assert SCRIPT in page.text_content("#findings")
        # open the views and sorts that put names and group values into the page
        page.click("#patches-nose summary")
        page.locator("#patches-nose button.patch-open").first.click()
        page.wait_for_function("document.getElementById('image-view').open")
        assert page.text_content("#viewer-title") == IMG + SCRIPT
        assert renamed_value_shown(page)
        close_viewer(page)
        choose(page, "group", SCRIPT)
        page.locator("#browser-grid .tile").first.click()
        page.wait_for_function("document.getElementById('image-view').open")
        close_viewer(page)
        point = region_point(page, "figure-comparison-0", "hair", axis="x3", below=15)  # its middle is forehead
        page.mouse.move(point["x"], point["y"], steps=4)
        assert SVG in hover_text(page, "Hair")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert watched.dialogs == []
        assert watched.problems() == []
        assert watched.remote_requests() == []
        assert page.evaluate("document.querySelectorAll('svg[onload], img[onerror]').length") == 0
    finally:
        watched.context.close()


def renamed_value_shown(page) -> bool:
    facts = page.text_content("#viewer-facts")
    return SCRIPT in facts and (SVG in facts or IMG in facts)


def test_the_checks_above_would_see_a_payload_that_ran(browser, tmp_path):
    """The same payloads written raw into a page (no escaping, no policy): the watcher sees them run."""
    path = tmp_path / "raw.html"
    path.write_text(f"<!DOCTYPE html><html><body><p>{IMG}</p><p>{SVG}</p></body></html>", encoding="utf-8")
    watched = Watched(browser, path)
    try:
        watched.page.wait_for_function("window.__pwned === 2", timeout=5000)
        watched.page.wait_for_timeout(200)
        assert watched.dialogs == ["1"]
        assert any(url.endswith("/x") for url in watched.remote_requests())
    finally:
        watched.context.close()
