"""The HTML report: one valid, self-contained page that loads nothing and keeps user text inert."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import plotly.offline
import pytest

import number_cases
import reportgen.report.figures
from report_fixture import build_results, region_ablation, verification
from reportgen.explain.methods import METHODS
from reportgen.faces.regions import ESTIMATED, PAINT_ORDER
from reportgen.inputs.config import make_config, to_toml
from reportgen.report import CONTENT_SECURITY_POLICY, render_html, script_json, write_html, write_json
from reportgen.report import format as number_format
from reportgen.resources import plotly_bundle

EVIL = "</script><script>alert(1)</script>"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Attributes that make a browser fetch or navigate.
RESOURCE_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset", "xlink:href", "background",
                       "manifest", "ping", "cite", "longdesc"}


class Page(HTMLParser):
    """Collects tags, attributes, script bodies and nesting errors."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self.styles: list[str] = []
        self._script: dict | None = None
        self._style = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))
        if tag == "style":
            self._style = True
            self.styles.append("")
        if "style" in attributes:
            self.styles.append(attributes["style"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.errors.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()
        if tag == "script":
            self._script = None
        if tag == "style":
            self._style = False

    def handle_data(self, data):
        if self._script is not None:
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)
        elif self._style:
            self.styles[-1] += data

    def script(self, id_):
        return next(text for attributes, text in self.scripts if attributes.get("id") == id_)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def results():
    return build_results()


@pytest.fixture(scope="module")
def html(results):
    return render_html(results)


@pytest.fixture(scope="module")
def page(html):
    return parse(html)


def test_report_is_valid_html_with_one_html_element_and_every_tag_closed(html, page):
    assert html.startswith("<!DOCTYPE html>")
    assert [tag for tag, _ in page.tags].count("html") == 1
    assert [tag for tag, _ in page.tags].count("body") == 1
    assert page.errors == []
    assert page.stack == []


def test_embedded_results_round_trip_equal(results, page):
    assert json.loads(page.script("reportgen-results")) == results


def test_nothing_is_loaded_from_the_network(page):
    for tag, attributes in page.tags:
        for name, value in attributes.items():
            if name.lower() in RESOURCE_ATTRIBUTES and value:
                target = value.strip().lower()
                assert not target.startswith(("http:", "https:", "//", "ftp:")), (tag, name, value[:80])
                if tag in ("img", "source", "script", "iframe", "embed", "audio", "video") and name == "src":
                    assert target.startswith("data:"), (tag, value[:80])
    assert not any(tag in ("link", "iframe", "object", "embed", "base") for tag, _ in page.tags)
    assert not any("src" in attributes for tag, attributes in page.tags if tag == "script")
    for css in page.styles:
        for url in re.findall(r"url\(\s*['\"]?([^)'\"]*)", css):
            assert url.strip().lower().startswith("data:"), url
        assert "@import" not in css


def _resolve(results, path):
    value = results
    for key in path:
        value = value[key]
    return value


def test_every_image_is_a_data_uri_from_the_results(results, page):
    images = [attributes for tag, attributes in page.tags if tag == "img"]
    assert images
    for attributes in images:
        if "src" in attributes:
            assert attributes["src"].startswith("data:image/")
        elif "data-picture" in attributes:
            assert _resolve(results, json.loads(attributes["data-picture"])).startswith("data:image/jpeg;base64,")
        else:  # the whole-image view's pictures, filled in when it opens
            assert attributes["id"] in ("viewer-attention", "viewer-regions", "viewer-partner", "viewer-partner-regions")
    pictures = [json.loads(a["data-picture"]) for a in images if "data-picture" in a]
    assert sum(p[0] == "patches" for p in pictures) == sum(len(v) for v in results["patches"].values())
    assert sum(p[0] == "examples" for p in pictures) == sum(1 + bool(e.get("regions_uri")) for e in results["examples"])


def test_every_picture_is_written_once():
    """Pictures are in the embedded results only; the page's <img> elements get them from there."""
    results = build_results()
    counter = iter(range(10**6))

    def mark(value):
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        if isinstance(value, str) and value.startswith("data:image/"):
            return f"data:image/jpeg;base64,UNIQUE{next(counter):06d}AAAA"
        return value

    results = mark(results)
    html = render_html(results)
    marks = re.findall(r"UNIQUE\d{6}", html)
    assert len(marks) == next(counter) > 300
    assert len(set(marks)) == len(marks)


def test_patches_open_their_whole_image_view(results, page):
    buttons = [a for tag, a in page.tags if tag == "button" and "patch-open" in (a.get("class") or "")]
    assert len(buttons) == sum(len(v) for v in results["patches"].values())
    assert all(a["data-view"] in results["views"] for a in buttons)
    view = next(iter(results["views"].values()))
    assert {"uri", "regions_uri", "label", "prediction", "probability"} <= set(view)
    assert any(tag == "dialog" and a.get("id") == "image-view" for tag, a in page.tags)


def test_patches_without_views_are_plain_pictures(results):
    results = build_results(with_groups=False)
    del results["views"]
    page = parse(render_html(results))
    assert not any("patch-open" in (a.get("class") or "") for tag, a in page.tags if tag == "button")
    assert sum("data-picture" in a for tag, a in page.tags if tag == "img") >= 6


def test_image_browser_says_it_shows_a_representative_sample(results, html, page):
    browser = results["browser"]
    assert browser["sampled"] and browser["total_seen"] > len(browser["images"])
    text = re.sub(r"\s+", " ", html)
    shown, seen = len(browser["images"]), browser["total_seen"]
    assert f"A representative sample of <strong>{shown}</strong> of the {seen} analysed images" in text
    assert "the 10 most confident predictions, the 10 least confident, and 40 chosen at random" in text
    options = [a for tag, a in page.tags if tag == "option"]
    assert {a.get("data-key") for a in options if a.get("value") == "region"} == set(browser["regions"])
    assert {a.get("data-key") for a in options if a.get("value") == "group"} == {"protected", "Eyeglasses"}


def test_image_browser_is_left_out_without_a_sample():
    results = build_results(with_groups=False)
    del results["browser"]
    html = render_html(results)
    assert 'id="browser"' not in html and 'href="#browser"' not in html


def test_comparison_has_a_difference_map_centred_at_zero(results, page):
    figure = json.loads(page.script("figure-comparison-0"))
    comparison = results["comparisons"][0]
    panels = {trace.get("xaxis") or "x" for trace in figure["data"] if trace.get("meta")}
    assert panels == {"x", "x2", "x3"}
    difference = {t["meta"]: t for t in figure["data"] if t.get("meta") and t.get("xaxis") == "x3"}
    rows = {r["id"]: r for r in comparison["regions"]}
    assert set(difference) == set(rows)
    scale = next(t for t in figure["data"] if t.get("xaxis") == "x3" and t.get("marker", {}).get("showscale"))
    assert scale["marker"]["cmax"] == -scale["marker"]["cmin"] > 0
    assert scale["marker"]["cmax"] >= max(abs(r["difference"]) for r in rows.values())
    most = max(rows.values(), key=lambda r: r["difference"])
    least = min(rows.values(), key=lambda r: r["difference"])
    colour = {rid: tuple(map(int, re.findall(r"\d+", t["fillcolor"]))) for rid, t in difference.items()}
    assert most["difference"] > 0 > least["difference"]
    assert colour[most["id"]][0] > colour[most["id"]][2]  # orange: higher in b
    assert colour[least["id"]][2] > colour[least["id"]][1]  # purple: higher in a
    for rid, row in rows.items():
        assert (difference[rid]["line"]["width"] > 2) == bool(row["beyond_noise"])
        assert "b − a" in difference[rid]["text"]
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert any("difference" in t for t in titles)


def test_csv_download_button_is_offered(page):
    ids = [a.get("id") for tag, a in page.tags if tag == "button"]
    assert "download-results" in ids and "download-regions" in ids


def test_long_failure_lists_are_cut_in_the_page_but_kept_in_the_results():
    results = build_results(with_groups=False)
    results["failures"] = [{"image": f"x/{k:05d}.jpg", "reason": "no face found" if k % 3 else "unreadable"}
                           for k in range(1000)]
    html = render_html(results)
    assert html.count("<tr><td><code>x/") == 50
    assert "The first 50 of 1" in html and "no face found: 666" in html
    assert json.loads(parse(html).script("reportgen-results"))["failures"] == results["failures"]


def test_content_security_policy_forbids_network_before_any_script(page):
    metas = [(i, a) for i, (tag, a) in enumerate(page.tags)
             if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"]
    assert len(metas) == 1
    index, meta = metas[0]
    assert meta["content"] == CONTENT_SECURITY_POLICY
    for directive in ("default-src 'none'", "connect-src 'none'", "img-src data: blob:"):
        assert directive in meta["content"]
    first_script = next(i for i, (tag, _) in enumerate(page.tags) if tag == "script")
    assert index < first_script


def test_plotly_js_is_inlined_exactly_once(html):
    source = plotly_bundle().read_text(encoding="utf-8")
    assert html.count(source[:300]) == 1
    assert html.count(source[-300:]) == 1
    assert "plotly.js (cartesian - minified)" in source[:300]


def _bundle_traces() -> set[str]:
    """The trace types the vendored plotly.js registers (each trace module declares its name)."""
    return set(re.findall(r'moduleType:"trace",name:"(\w+)"', plotly_bundle().read_text(encoding="utf-8")))


def test_every_figure_uses_a_trace_type_the_partial_plotly_bundle_has():
    bundle = _bundle_traces()
    assert {"bar", "scatter", "heatmap"} <= bundle and "scattergeo" not in bundle  # the partial bundle
    figures = {}
    for results in (build_results(), region_ablation(build_results(with_groups=False)), verification(build_results())):
        page = parse(render_html(results))
        figures.update({a["id"]: json.loads(text) for a, text in page.scripts if a.get("id", "").startswith("figure-")})
    assert {"figure-region-map", "figure-mean-map", "figure-ranked", "figure-checks-deletion", "figure-checks-sanity",
            "figure-comparison-0", "figure-verification-accuracy", "figure-verification-similarity"} <= set(figures)
    drawn = {trace.get("type", "scatter") for figure in figures.values() for trace in figure["data"]}
    assert drawn <= bundle, f"figures draw {sorted(drawn - bundle)}, which the plotly.js bundle lacks"
    # every trace class the figures' code can build, drawn by the fixtures or not
    source = (Path(reportgen.report.figures.__file__)).read_text()
    built = {name.lower() for name in re.findall(r"\bgo\.([A-Z]\w+)\(", source)} - {"figure"}
    assert built and built <= bundle, f"figures.py builds {sorted(built - bundle)}, which the bundle lacks"


def test_the_bundle_is_the_plotly_js_major_version_plotly_py_writes_figures_for():
    vendored = json.loads((plotly_bundle().parent / "package.json").read_text())["version"]
    shipped = re.search(r"plotly\.js v(\d+)\.", plotly.offline.get_plotlyjs()[:200]).group(1)
    assert vendored.split(".")[0] == shipped, (
        f"plotly.py writes figures for plotly.js {shipped}.x but the report inlines {vendored}: "
        "update reportgen/report/vendor/plotly.js (see SOURCE.md there)")
    assert (plotly_bundle().parent / "LICENSE").read_text().startswith("MIT License")


def test_figures_are_parsed_from_json_blocks(page):
    figures = [attributes["data-figure"] for _, attributes in page.tags if "data-figure" in attributes]
    assert {"figure-region-map", "figure-mean-map", "figure-ranked", "figure-comparison-0"} <= set(figures)
    for figure_id in figures:
        block = next(a for a, _ in page.scripts if a.get("id") == figure_id)
        assert block.get("type") == "application/json"
        figure = json.loads(page.script(figure_id))
        assert figure["data"] and "layout" in figure


def test_region_map_paints_every_region_in_paint_order_with_hover(results, page):
    figure = json.loads(page.script("figure-region-map"))
    painted = [trace["meta"] for trace in figure["data"] if trace.get("meta")]
    expected = [r for r in PAINT_ORDER if r == "background" or r in results["canonical_face"]["polygons"]]
    assert list(dict.fromkeys(painted)) == expected
    by_region = {trace["meta"]: trace for trace in figure["data"] if trace.get("meta")}
    for region_id in ("hair", "left_eye"):
        row = next(r for r in results["regions"] if r["id"] == region_id)
        text = by_region[region_id]["text"]
        assert row["label"] in text and "95% CI" in text and "n = " in text
        assert ("(estimated region)" in text) == (region_id in ESTIMATED)
    # y runs down the canvas, as in the polygons' pixels
    assert figure["layout"]["yaxis"]["range"][0] > figure["layout"]["yaxis"]["range"][1]


def test_density_colours_are_symmetric_on_a_log_scale(results, page):
    figure = json.loads(page.script("figure-region-map"))
    colours = {trace["meta"]: trace["fillcolor"] for trace in figure["data"] if trace.get("meta")}
    top, bottom = results["regions"][0], results["regions"][-1]
    assert top["density"] > 1 > bottom["density"]
    red, blue = (tuple(map(int, re.findall(r"\d+", colours[r["id"]]))) for r in (top, bottom))
    assert red[0] > red[2] and blue[2] > blue[0]


def test_sections_appear_in_the_agreed_order(html):
    order = ["summary", "findings", "checks", "map", "ranking", "region-groups", "groups", "patches", "browser", "examples",
             "how-to-read", "method", "data"]
    positions = [html.index(f'id="{section}"') for section in order]
    assert positions == sorted(positions)


def test_findings_are_shown_with_warnings_styled_apart(results, page):
    items = [a for tag, a in page.tags if tag == "li" and "finding" in (a.get("class") or "").split()]
    assert len(items) == len(results["findings"])
    warnings = [a for a in items if "warning" in a["class"].split()]
    assert len(warnings) == sum(f["severity"] == "warning" for f in results["findings"])


def test_run_summary_names_default_layer_and_lists_failures_in_details(html):
    assert "chosen by default: last layer with spatial output" in html
    assert "celeba/000412.jpg" in html
    failures = html.index("celeba/000412.jpg", html.index('id="summary"'))
    assert html.rfind("<details", 0, failures) > html.rfind("</details>", 0, failures)


def test_predicted_class_is_named_when_no_target_class():
    results = build_results(with_groups=False)
    results["run"]["target_class"] = None
    results["run"]["layer_source"] = "option"
    html = render_html(results)
    assert "each image&#39;s predicted class" in html or "each image's predicted class" in html
    assert "chosen by default" not in html


def test_groups_section_only_when_there_are_groups():
    html = render_html(build_results(with_groups=False))
    assert 'id="groups"' not in html
    assert parse(html).errors == []


def test_small_group_is_flagged_too_small_to_conclude(html):
    assert "too small to conclude" in html.lower()


def test_patch_sections_follow_the_ranking(results, page):
    sections = [a["id"] for tag, a in page.tags if tag == "details" and "patches" in (a.get("class") or "")]
    assert sections == [f"patches-{r['id']}" for r in results["regions"]]


def test_config_is_shown_as_toml_for_a_one_edit_rerun(html):
    assert "# layer = (not set)" in html
    assert "[analysis]" in html and "patches_per_region = 6" in html
    assert "upsample = true" in html


def test_config_toml_reads_back_as_the_same_run_config(tmp_path):
    config = make_config(images=tmp_path / "my images", annotations=tmp_path / "ann.csv", target="task",
                         model_file=tmp_path / "model.py", weights=tmp_path / "w.pt", protected=["Male", 'a "b"\\c'],
                         mean=(0.5, 0.25, 0.125), checkpoint_seconds=12.5, no_cache=True, out=tmp_path / "r.html")
    # (absolute paths: a relative one in a config file is read as relative to the file's folder)
    text = to_toml(config.to_dict())
    assert "# layer = (not set)" in text and "# workers = (not set)" in text
    assert tomllib.loads(text) == {key: value for key, value in config.to_dict().items() if value is not None}
    run_toml = tmp_path / "run.toml"
    run_toml.write_text(text)
    assert make_config(run_toml) == config


def test_config_toml_writes_tables_and_leaves_out_what_toml_cannot_hold():
    config = {"name": "Zoë\n<b>", "odd key": None, "values": [1, None, {"a": 2.5, "b": None}],
              "nested": {"flag": False, "unset": None, "deeper": {"x": [[1, 2], []]}}, "after": 3}
    text = to_toml(config)
    assert '# "odd key" = (not set)' in text and "# unset = (not set)" in text
    assert text.index("after = 3") < text.index("[nested]") < text.index("[nested.deeper]")
    assert tomllib.loads(text) == {"name": "Zoë\n<b>", "values": [1, {"a": 2.5}], "after": 3,
                                   "nested": {"flag": False, "deeper": {"x": [[1, 2], []]}}}


def test_script_injection_in_image_name_and_column_name_stays_escaped():
    results = build_results(column=EVIL)
    results["patches"]["left_eye"][0]["image"] = EVIL
    results["failures"][0]["image"] = EVIL
    results["examples"][0]["image"] = EVIL
    results["notes"].append(EVIL)
    html = render_html(results)
    assert EVIL not in html
    assert "<script>alert(1)" not in html
    page = parse(html)
    assert page.errors == []
    assert json.loads(page.script("reportgen-results")) == results
    # the column name is in the findings, the group tables and a figure's subplot titles
    assert any(EVIL in f["text"] for f in results["findings"])
    figure = json.loads(page.script("figure-comparison-0"))
    titles = " ".join(a["text"] for a in figure["layout"]["annotations"])
    assert "&lt;/script&gt;" in titles
    scripts = [a for tag, a in page.tags if tag == "script"]
    assert all(a.get("type") in (None, "application/json") for a in scripts)
    assert sum(1 for a in scripts if a.get("type") is None) == 2  # plotly.js and the report's own script


def test_a_template_folder_overrides_shipped_templates_by_name(tmp_path):
    (tmp_path / "report.css").write_text("body { color: #123456; }")
    html = render_html(build_results(with_groups=False), template_dir=tmp_path)
    assert "#123456" in html and "--accent" not in html
    assert 'id="map"' in html


def test_script_json_escapes_markup_characters_and_round_trips():
    value = {"a": "</script><!-- & >", "b": [1.5, None]}
    text = str(script_json(value))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value


def test_write_html_and_json_replace_files_atomically(tmp_path):
    results = build_results(with_groups=False)
    results["regions"][0]["ci"] = [math.nan, math.inf]
    html_path, json_path = tmp_path / "report.html", tmp_path / "results.json"
    html_path.write_text("old")
    write_html(results, html_path)
    write_json(results, json_path)
    assert sorted(os.listdir(tmp_path)) == ["report.html", "results.json"]  # no temporary files left
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    written = json.loads(json_path.read_text(encoding="utf-8"))
    assert written["regions"][0]["ci"] == [None, None]  # strict JSON: NaN and inf become null
    assert written["regions"][1] == results["regions"][1]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_json({"bad": object()}, path)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


# -- the checks, the method and the intervals ------------------------------------------------------------

def text_of(html: str, section: str) -> str:
    """The visible text of one <section id=...> (tags dropped, whitespace collapsed, entities decoded)."""
    start = html.index(f'<section id="{section}"')
    body = html[start:html.index("</section>", start)]
    body = re.sub(r"<script[^>]*>.*?</script>", " ", body, flags=re.S)
    body = re.sub(r"</?(code|strong|a|abbr|em|b|i)\b[^>]*>", "", body)  # inline: no space
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def masthead(html: str) -> str:
    return html[html.index('<header class="masthead">'):html.index("</header>")]


def test_checks_section_shows_the_deletion_and_sanity_numbers(results, html, page):
    text = text_of(html, "checks")
    assert text.startswith("Can this explanation be trusted?")
    assert 'href="#checks"' in masthead(html)
    # deletion: the difference of the curves in log-odds with its interval, probability points beside it
    assert "Passed. Removing each image's regions in the order the explanation ranks them" in text
    assert ("averaged over 0–50% of the image removed, by 2.5 more in log-odds of the explained class "
            "(95% CI 2.0 to 3.0), or 22 percentage points of class probability") in text
    assert "Explanation's order 3.1 2.6 to 3.5 27" in text and "Random orders 0.6 0.4 to 0.8 5.0" in text
    assert "Difference (area between the curves) 2.5 2.0 to 3.0 22" in text
    assert "The top-ranked region alone (1.3% of the image on average) lowers the evidence by 1.9" in text
    assert "64 sampled images" in text and "replaced by the mean colour" in text and "in 4 random orders" in text
    assert "Left eye × 29" in text and "Right eye × 21" in text and "Hair × 5" in text
    # sanity: each cascade step with its correlation, interval and images; the verdict in words
    assert "Output layer (fc) −0.12 −0.21 to −0.03 64 (5 zero)" in text
    assert "Top half of the layers (21 of 41, from layer3.0.conv1 up) 0.08 −0.01 to 0.17 64" in text
    assert "Every layer (41) 0.18 0.10 to 0.26 64 (2 zero)" in text
    assert "Passed. The region ranking changes when the model's weights are randomised" in text
    assert "Top region, real model Left eye" in text and "Top region, randomised model (every layer) Background" in text
    assert "counts as changed: correlation 0, and its image stays in the numbers" in text
    # both as figures: the two deletion curves with their bands, the cascade on its verdict bands
    deletion = json.loads(page.script("figure-checks-deletion"))
    curves = {trace.get("name"): trace for trace in deletion["data"] if trace.get("name")}
    ranked = curves["regions removed in the explanation's order"]
    random = curves["regions removed in random orders"]
    assert ranked["x"][-1] == 50 and ranked["y"] == results["faithfulness"]["ranked_drop"]
    assert random["y"] == results["faithfulness"]["random_drop"]
    assert sum(1 for trace in deletion["data"] if trace.get("fill") == "tonexty") == 2  # the two bands
    assert "area between the curves: <b>2.5</b> (95% CI 2.0 to 3.0)" in deletion["layout"]["annotations"][0]["text"]
    assert deletion["layout"]["yaxis"]["title"]["text"] == "drop, log-odds"
    sanity = json.loads(page.script("figure-checks-sanity"))
    assert sanity["data"][0]["y"] == [step["rank_correlation"] for step in results["sanity"]["steps"]]
    assert sanity["data"][0]["x"][0] == "output layer<br>(fc)"
    assert [a["text"] for a in sanity["layout"]["annotations"]] == ["passed", "doubtful", "failed"] + ["n = 64"] * 3
    assert [(b["y0"], b["y1"]) for b in sanity["layout"]["shapes"]] == [(-1.0, 0.4), (0.4, 0.7), (0.7, 1.0)]


def failing(sanity_verdict="passed", faithful=True) -> dict:
    results = build_results(with_groups=False)
    results["sanity"].update(verdict=sanity_verdict, rank_correlation=0.86, rank_correlation_ci=[0.8, 0.91])
    if not faithful:
        results["faithfulness"].update(difference=0.05, difference_ci=[-0.21, 0.3], faithful=False)
    return results


@pytest.mark.parametrize("verdict, faithful, warned", [
    ("passed", True, set()), ("doubtful", True, set()), ("unknown", True, set()),
    ("failed", True, {"sanity"}), ("passed", False, {"deletion"}), ("failed", False, {"sanity", "deletion"}),
])
def test_failed_checks_raise_a_warning_under_the_lede(verdict, faithful, warned):
    html = render_html(failing(verdict, faithful))
    top = re.sub(r"\s+", " ", masthead(html))
    assert ("Caution: this explanation did not pass its checks." in top) == bool(warned)
    assert ("Sanity check failed." in top) == ("sanity" in warned)
    assert ("The explanation may not be faithful." in top) == ("deletion" in warned)
    if "sanity" in warned:
        assert "rank correlation 0.86, 95% CI 0.80 to 0.91" in top
    if "deletion" in warned:
        assert ("lowers the model's evidence for the class not clearly faster than removing the same regions in "
                "random order (difference 0.05 in log-odds of the explained class, 95% CI −0.2 to 0.3)") in top
        assert "Not passed: the explanation may not be faithful." in text_of(html, "checks")
    if warned:
        assert top.index("class=\"lede\"") < top.index("Caution") < top.index('class="toc"')
        assert '<a href="#checks">See the checks</a>' in top
    assert parse(html).errors == []


def test_checks_turned_off_say_so_and_how_to_run_them():
    results = build_results(with_groups=False)
    results["faithfulness"] = results["sanity"] = None
    results["run"]["check_images"] = 0
    html = render_html(results)
    text = text_of(html, "checks")
    assert "The checks were not run (they were turned off with --check-images 0)." in text
    assert "run again with --check-images 64" in text
    assert "figure-checks" not in html and "Caution" not in html
    assert "faithfulness and sanity checks turned off" in text_of(html, "summary")
    # older results without the fields: not run, but not "turned off"
    del results["faithfulness"], results["sanity"], results["run"]["check_images"]
    text = text_of(render_html(results), "checks")
    assert "The checks were not run." in text and "turned off" not in text


def test_one_missing_check_is_named_and_the_other_still_shown():
    results = build_results(with_groups=False)
    results["faithfulness"] = None
    html = render_html(results)
    text = text_of(html, "checks")
    assert "No deletion check in these results." in text and "Rank correlation" in text
    assert "figure-checks-sanity" in html and "figure-checks-deletion" not in html


def test_results_from_before_the_curves_and_the_cascade_still_render():
    """Older results: one top and one random region in probability points, one randomisation of every layer
    with its zero maps left out. They keep their numbers, their warning and their charts."""
    from report_fixture import LEGACY_FAITHFULNESS, LEGACY_SANITY

    results = build_results(with_groups=False)
    results["faithfulness"], results["sanity"] = dict(LEGACY_FAITHFULNESS), dict(LEGACY_SANITY)
    results["findings"] = None
    html = render_html(results)
    text = text_of(html, "checks")
    assert parse(html).errors == []
    assert "lowered the class probability by 23 points, against 4.1 for a random region" in text
    assert "(difference 19 points, 95% CI 14–25; 64 images)" in text
    assert "Run again for the deletion curves." in text
    assert "Every layer 0.18 0.10 to 0.26 64" in text and "2 left out" in text
    deletion = json.loads(parse(html).script("figure-checks-deletion"))
    assert [round(v, 2) for v in deletion["data"][0]["x"]] == [23.15, 4.12]
    assert "figure-checks-sanity" in html
    results["faithfulness"].update(top_drop=0.043, random_drop=0.039, difference=0.004, difference_ci=[-0.012, 0.02],
                                   faithful=False, top_area=0.31, random_area=0.09)
    html = render_html(results)
    assert "by 4.3 percentage points, not clearly more than a random region of similar area (3.9 points)" in \
        re.sub(r"\s+", " ", masthead(html))
    assert "much smaller than the top-ranked ones (9% against 31% of the image)" in text_of(html, "checks")


METHOD_TEXT = {
    "gradcam": "The gradient-weighted activations of one layer",
    "hirescam": "element by element, summed over channels and kept where positive",
    "integrated-gradients": "integrated along a straight path from the baseline (the mean colour) to the image, in 32 steps",
    "occlusion": "a square window of 1/7 of the input side (here 32×32 px, moved 16 px at a time)",
    "region-ablation": "when one whole face region is replaced by the baseline (the mean colour)",
}


@pytest.mark.parametrize("method", sorted(METHOD_TEXT))
def test_method_wording_follows_the_method(method):
    results = build_results(with_groups=False)
    results["run"]["method"] = method
    html = render_html(results)
    lede = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", masthead(html))))
    name = METHODS[method].name
    assert name in lede
    assert ("at layer layer4" in lede) == (method in ("gradcam", "hirescam"))
    if method in ("integrated-gradients", "occlusion"):
        assert f"{name} input attribution of model" in lede
    if method == "region-ablation":
        assert "Region ablation of model: how much the class probability drops when each named face region is " \
               "replaced by the mean colour" in lede
    guide = text_of(html, "method")
    assert METHOD_TEXT[method] in guide
    assert [m for m, phrase in METHOD_TEXT.items() if phrase in guide] == [method]
    assert ("It is coarse: one cell of the layer covers" in guide) == (method in ("gradcam", "hirescam"))
    assert "Baseline. \"Removed\" means replaced by the mean colour" in guide
    summary = text_of(html, "summary")
    assert ("Layer and method" in summary) == (method in ("gradcam", "hirescam"))
    assert ("no layer is used" in summary) == (method not in ("gradcam", "hirescam"))


def test_blur_baseline_and_shapley_samples_are_described():
    results = region_ablation(build_results(with_groups=False), samples=25)
    results["run"]["baseline"] = "blur"
    html = render_html(results)
    guide = text_of(html, "method")
    assert "replaced by the baseline (a blurred copy of the image)" in guide
    assert "as Shapley values" in guide and "(25 random orders)" in guide
    assert "a heavily blurred copy keeps colour and light" in guide
    assert "Shapley values from 25 random region orders" in text_of(html, "summary")


def test_region_ablation_shows_each_regions_probability_drop():
    results = region_ablation(build_results(with_groups=False))
    html = render_html(results)
    page = parse(html)
    top = results["regions"][0]
    assert top["effect"] == 0.1235
    # the ranking: a "drop" column instead of "share", in percentage points
    ranked = json.loads(page.script("figure-ranked"))
    notes = [a["text"] for a in ranked["layout"]["annotations"]]
    assert "<b>drop, pts</b>" in notes and "<b>share</b>" not in notes and "12" in notes
    assert "removing it lowers the class probability by 12 points (95% CI 10–15)" in ranked["data"][0]["hovertext"][0]
    # the region map's hover
    region_map = json.loads(page.script("figure-region-map"))
    hover = next(t["text"] for t in region_map["data"] if t.get("meta") == top["id"])
    assert "removing it lowers the class probability by 12 points (95% CI 10–15)" in hover
    # the table of drops, and the unit explained in the intro texts
    ranking = text_of(html, "ranking")
    assert "Left eye 12 pts 10–15" in ranking
    assert "probability drop: how many percentage points the class probability falls" in ranking
    assert "in percentage points (50 points = from 0.90 to 0.40)" in text_of(html, "map")
    assert "Probability drop How much the probability of the explained class falls" in text_of(html, "how-to-read")
    # with the other methods, none of it
    plain = render_html(build_results(with_groups=False))
    assert "removing it lowers" not in plain and "drop, pts" not in plain and 'id="region-effects"' not in plain


def test_a_raised_probability_reads_as_a_rise():
    results = region_ablation(build_results(with_groups=False))
    results["regions"][-1].update(effect=-0.0071, effect_ci=[-0.012, -0.002])
    figure = json.loads(parse(render_html(results)).script("figure-region-map"))
    hover = next(t["text"] for t in figure["data"] if t.get("meta") == results["regions"][-1]["id"])
    assert "removing it raises the class probability by 0.7 points (95% CI 0.2–1.2)" in hover


def test_interval_wording_says_how_intervals_were_computed():
    results = build_results()
    html = render_html(results)
    glossary = text_of(html, "how-to-read")
    assert "Here it is a bootstrap over images: the images were resampled with replacement 2 000 times" in glossary
    assert "Each group's images were resampled 2 000 times, independently" in glossary
    assert "Holm's correction then adjusts the p-values" in glossary
    assert "95% intervals: bootstrap over images (2000 resamples)" in text_of(html, "summary")
    assert "(a bootstrap of the difference, each group's images resampled 2 000 times)" in text_of(html, "groups")
    results["run"].update(bootstrap=0, interval="Student t over images")
    for comparison in results["comparisons"]:
        for row in comparison["regions"]:
            row["test"] = "welch"
    html = render_html(results)
    glossary = text_of(html, "how-to-read")
    assert "Here it is a Student t interval of the mean over images" in glossary and "resampled" not in glossary
    assert "Each difference was tested with Welch's t-test" in glossary
    assert "(Welch's t-test)" in text_of(html, "groups")


def test_text_in_the_checks_stays_escaped():
    results = build_results(with_groups=False)
    results["faithfulness"]["top_regions"] = {EVIL: 3}
    results["faithfulness"]["baseline"] = EVIL
    results["faithfulness"]["evidence"] = EVIL
    results["sanity"]["randomisation"] = EVIL
    results["sanity"]["top_region"] = EVIL
    results["sanity"]["steps"][0]["randomised"] = f"the output layer ({EVIL})"
    html = render_html(results)
    assert EVIL not in html and "<script>alert(1)" not in html
    assert parse(html).errors == []
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html


def test_a_mean_map_without_numbers_is_left_out():
    results = build_results(with_groups=False)
    grid = results["canonical_face"]["mean_attribution"]
    results["canonical_face"]["mean_attribution"] = [[None] * len(grid[0]) for _ in grid]
    html = render_html(results)
    assert "figure-mean-map" not in html and "No mean attention map in these results." in html
    assert "figure-region-map" in html


@pytest.mark.parametrize("value, text", number_cases.PERCENT)
def test_shares_read_by_one_rule(value, text):
    assert number_format.percent(value) == text


@pytest.mark.parametrize("value, text", number_cases.PROBABILITY)
def test_probabilities_read_by_one_rule(value, text):
    assert number_format.probability(value) == text


@pytest.mark.parametrize("value, text", number_cases.SIMILARITY)
def test_similarities_read_by_one_rule(value, text):
    assert number_format.similarity(value) == text


@pytest.mark.parametrize("value, digits, text", number_cases.FIXED)
def test_decimals_are_rounded_as_javascript_rounds_them(value, digits, text):
    assert number_format.fixed(value, digits) == text


@pytest.mark.parametrize("name, value, text", number_cases.FILTERS)
def test_the_other_filters_follow_the_rule(name, value, text):
    assert number_format.FILTERS[name](value) == text


def test_probabilities_in_the_page_use_the_rule():
    results = build_results(with_groups=False)
    example = results["examples"][0]
    example["probability"] = 0.125  # a tie: "%.2f" would write 0.12, the browser's toFixed 0.13
    assert "with probability 0.13" in text_of(render_html(results), "examples")


# -- face verification ---------------------------------------------------------------------------------------

def _verification(**options) -> dict:
    return verification(build_results(), **options)


def _text(html: str) -> str:
    """The page's visible words (tags dropped, entities read, whitespace folded), without the embedded data."""
    html = re.sub(r"<script\b.*?</script>", " ", html, flags=re.S)
    html = re.sub(r"<style\b.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", re.sub(r"</?(code|strong|em|a|abbr|small|b)\b[^>]*>", "", html))))


def _without_checks(html: str) -> str:
    """The page without the checks section and the masthead's check warning (their words are the checks' own)."""
    html = re.sub(r'<section id="checks".*?</section>', " ", html, flags=re.S)
    return re.sub(r'<div class="callout alert trust-warning".*?</div>', " ", html, flags=re.S)


@pytest.fixture(scope="module")
def verification_html():
    return render_html(_verification())


def test_a_verification_report_speaks_of_similarity_not_of_class_probabilities(verification_html):
    text = _text(_without_checks(verification_html))
    for words in ("class probability", "predicted class", "most confident", "least confident", "Class explained",
                  "class it explains", "explained class", "class score", "Probability of the predicted class"):
        assert words not in text, words
    assert "What makes two faces look alike to the model?" in text
    assert "similarity to the other image of the pair (64 pairs, both images of each explained)" in text
    assert "pushed the model towards a higher similarity with the other image of the pair" in text
    assert "supports the similarity to the other image of the pair" in text  # Grad-CAM's own text
    assert "the 10 images with the highest similarity, the 10 the lowest" in text
    # report.js gets the same words
    task = json.loads(parse(verification_html).script("reportgen-task"))
    assert task["verification"] and task["value"] == "Similarity" and task["partner"] == "the other image of the pair"
    assert task["label_names"]["1"].startswith("same person") and task["why"]["most confident"] == "highest similarity"


def test_a_classifier_report_keeps_its_words_and_has_no_verification_section(html):
    text = _text(html)
    assert "Where does the model look on a face?" in text and "Class explained" in text
    assert 'id="verification"' not in html and "similarity" not in text.lower()
    assert json.loads(parse(html).script("reportgen-task"))["verification"] is False


def test_verification_quality_follows_the_findings_and_is_in_the_contents(verification_html):
    assert verification_html.index('id="findings"') < verification_html.index('id="verification"') \
        < verification_html.index('id="checks"')
    assert 'href="#verification"' in verification_html


def test_verification_section_shows_accuracy_per_group_and_calls_out_a_gap_beyond_noise():
    results = _verification()
    quality = results["verification"]
    gap = quality["comparisons"][0]
    assert gap["beyond_noise"] and gap["difference"] < 0  # the fixture's second group is served worse
    html = render_html(results)
    section = html[html.index('id="verification"'):html.index('id="checks"')]
    text = _text(section)
    assert "Accuracy differs between groups beyond noise." in text
    worse, better = number_format.percent(gap["accuracy_b"]), number_format.percent(gap["accuracy_a"])
    assert f"correctly for {worse} of protected=1 against {better} of protected=0" in text
    assert f"a gap of {number_format.points(-gap['difference'])} percentage points" in text
    assert f"(95% CI {number_format.ci_points([-gap['ci'][1], -gap['ci'][0]])})" in text
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", section.split("verification-table", 1)[1].split("</table>", 1)[0], re.S)
    names = [_text(r).strip().split(" ")[0] for r in rows[1:]]
    assert names[0] == "All" and set(names[1:]) == set(quality["groups"])
    overall = quality["overall"]
    assert number_format.percent(overall["accuracy"]) in _text(rows[1])
    assert number_format.ci_percent(overall["accuracy_ci"]) in _text(rows[1])
    assert "threshold with the best accuracy on these pairs" in text
    assert number_format.similarity(quality["threshold"]) in text
    assert 'class="flagged"' in section and "beyond noise" in text

    quiet = render_html(_verification(gap=False))
    section = quiet[quiet.index('id="verification"'):quiet.index('id="checks"')]
    assert "Accuracy differs between groups" not in section and "within noise" in section


def test_verification_figures_draw_accuracy_with_intervals_and_the_two_similarity_distributions(verification_html):
    page = parse(verification_html)
    results = _verification()
    quality = results["verification"]
    accuracy = json.loads(page.script("figure-verification-accuracy"))
    points = accuracy["data"][0]
    assert points["x"] == [quality["overall"]["accuracy"]] + [g["accuracy"] for g in quality["groups"].values()]
    assert points["error_x"]["array"][0] == pytest.approx(quality["overall"]["accuracy_ci"][1] - quality["overall"]["accuracy"])
    assert accuracy["layout"]["xaxis"]["range"] == [0, 1.0]  # gaps read at their true size
    # the worse group of the gap is marked
    colours = dict(zip(points["y"], points["marker"]["color"]))
    assert colours["protected=1"] != colours["protected=0"]

    figure = json.loads(page.script("figure-verification-similarity"))
    shown = [t for t in figure["data"] if t.get("x") and t["x"][0] is not None]
    assert len(shown) == 2 * (1 + len(quality["groups"]))  # genuine and impostor, overall and per group
    for trace in shown:
        assert sum(trace["y"][:-1]) == pytest.approx(1.0)  # fractions of one kind of pair
        assert trace["line"]["shape"] == "hv" and len(trace["x"]) == len(trace["y"]) == 41
    legend = {t["name"] for t in figure["data"] if t.get("showlegend") is not False}
    assert {"genuine pairs (same person)", "impostor pairs (different people)",
            f"threshold {number_format.similarity(quality['threshold'])}"} <= legend
    lines = [s for s in figure["layout"]["shapes"] if s.get("line", {}).get("dash") == "dash"]
    assert len(lines) == 1 + len(quality["groups"]) and all(s["x0"] == quality["threshold"] for s in lines)


def test_run_section_names_the_pair_file_the_score_and_how_the_threshold_was_chosen(verification_html):
    summary = verification_html[verification_html.index('id="summary"'):verification_html.index('id="findings"')]
    text = _text(summary)
    assert "pairs pairs.csv" in text and "64 pairs listed: 128 images, both of each pair explained" in text
    assert "Score explained similarity of each image to the other image of the pair" in text
    assert "the embedding it is compared with is held fixed" in text
    assert "truth (same person or not) from column is_same" in text
    threshold = number_format.similarity(_verification()["verification"]["threshold"])
    assert f"same/different threshold {threshold} (the best accuracy on these pairs)" in text
    assert "Decisions accuracy" in text

    given = render_html(_verification(threshold=0.5))
    text = _text(given[given.index('id="summary"'):given.index('id="findings"')])
    assert "same/different threshold 0.500 (given with --threshold)" in text


def test_a_reference_run_shows_the_reference_photo_and_its_words():
    results = _verification(reference=True)
    html = render_html(results)
    page = parse(html)
    summary = _text(html[html.index('id="summary"'):html.index('id="findings"')])
    assert "each compared with the reference photo reference.jpg" in summary
    assert "similarity of each image to the reference photo" in summary
    pictures = [json.loads(a["data-picture"]) for tag, a in page.tags if tag == "img" and "data-picture" in a]
    reference = [p for p in pictures if p[0] == "views" and p[2] == "partner_uri"]
    assert reference and _resolve(results, reference[0]) == next(iter(results["views"].values()))["partner_uri"]
    text = _text(_without_checks(html))
    assert "photos of the reference person" in text and "genuine pairs" not in text.split("How to read this")[0]
    assert "with celeba/" not in text  # the partner is always the reference: not named under each picture


def test_genuine_and_impostor_pairs_are_groups_named_in_words(verification_html):
    text = _text(verification_html[verification_html.index('id="groups"'):verification_html.index('id="patches"')])
    assert "Genuine pairs (same person) pair genuine" in text
    assert "Impostor pairs (different people) compared with genuine pairs (same person)" in text
    assert "Density in genuine pairs (same person)" in text
    figure = json.loads(parse(verification_html).script("figure-comparison-2"))
    titles = " ".join(a["text"] for a in figure["layout"]["annotations"])
    assert "genuine pairs (same person)" in titles and "pair=genuine" not in titles


def test_patches_and_examples_show_the_other_image_of_the_pair_beside_each_picture(verification_html):
    results = _verification()
    page = parse(verification_html)
    pictures = [json.loads(a["data-picture"]) for tag, a in page.tags if tag == "img" and "data-picture" in a]
    partners = [p for p in pictures if p[0] == "views" and p[2] == "partner_uri"]
    assert len(partners) == sum(len(items) for items in results["patches"].values())
    assert all(_resolve(results, p).startswith("data:image/") for p in partners)
    assert sum(p[0] == "examples" and p[2] == "partner_uri" for p in pictures) == len(results["examples"])
    patch = results["patches"]["left_eye"][0]
    section = _text(verification_html[verification_html.index('id="patches-left_eye"'):])
    assert f"with {patch['partner']}" in section
    assert f"similarity {number_format.similarity(patch['similarity'])}" in section
    examples = _text(verification_html[verification_html.index('id="examples"'):verification_html.index('id="how-to-read"')])
    assert "highest similarity" in examples and "lowest similarity" in examples and "confident" not in examples


def test_a_pair_among_the_examples_from_both_sides_is_shown_once():
    results = _verification()
    first, second = results["examples"][:2]
    second.update(image=first["partner"], partner=first["image"])  # the same pair, seen from its other image
    page = parse(render_html(results))
    shown = {json.loads(a["data-picture"])[1] for tag, a in page.tags if tag == "img" and "data-picture" in a
             and json.loads(a["data-picture"])[0] == "examples"}
    assert shown == set(range(len(results["examples"]))) - {1}


def test_a_verification_region_ablation_reads_as_a_drop_of_similarity():
    results = region_ablation(_verification())
    html = render_html(results)
    text = _text(_without_checks(html))
    assert "Similarity drop per region" in text and "Probability drop" not in text
    assert "how much the similarity drops when each named face region is replaced" in text
    ranked = json.loads(parse(html).script("figure-ranked"))
    assert "lowers the similarity by" in ranked["data"][0]["hovertext"][0] or \
        "raises the similarity by" in ranked["data"][0]["hovertext"][0]


def test_dissimilarity_is_named_when_it_is_explained():
    results = _verification()
    results["run"]["target_class"] = 0
    text = _text(_without_checks(render_html(results)))
    assert "What makes two faces look apart to the model?" in text
    assert "dissimilarity of each image to the other image of the pair" in text


def test_a_verification_run_without_labelled_pairs_renders_without_its_quality_section():
    results = _verification()
    results["verification"] = None
    html = render_html(results)
    assert 'id="verification"' not in html and parse(html).errors == []
    assert "Score explained" in html


def test_the_checks_companion_numbers_are_points_of_similarity_in_a_verification_run():
    """A classifier's deletion check shows probability points beside the evidence; a verification run's shows
    points of similarity, in the report and on the console."""
    from reportgen.cli import _checks_line

    classifier = build_results(with_groups=False)
    checked = verification(build_results(with_groups=False))
    for results, words in ((classifier, "percentage points of class probability"),
                           (checked, "points of similarity (hundredths)")):
        assert results["faithfulness"]["faithful"] and "difference_probability" in results["faithfulness"]
        checks = text_of(render_html(results), "checks")
        assert words in checks
    assert "percentage points of class probability" not in text_of(render_html(checked), "checks")
    line = _checks_line(checked["faithfulness"], None, "similarity")
    assert "similarity points" in line and "probability points" not in line
