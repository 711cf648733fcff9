"""Open a reportgen HTML report in headless Chromium, check it works offline, and take screenshots.

    python benchmarks/screenshot_report.py report.html out.png [--width 1280] [--chromium /usr/bin/chromium]

Writes ``out.png`` (the full page), ``out-map.png`` (the region map while hovering a region, with the
patches panel after a click), ``out-view.png`` (the whole-image view a patch opens), ``out-browser.png``
(the image browser sorted by the region's share), ``out-phone.png`` (390 px wide), ``out-print.pdf``
and ``out-print.png`` (the page as printed on A4), and, where poppler's ``pdftoppm`` is installed,
``out-print-1.png``, ``out-print-2.png``, … (the PDF's pages). Prints a JSON summary and exits non-zero
when something is wrong: a console error or page error, a request for anything other than a
``data:``/``blob:`` URI, a figure that did not draw, a picture that did not decode, a hover label
missing, a click that did not show the region's patches, a patch that did not open its view, a browser
sort that did not sort, or a download (JSON, CSV) that differs from the embedded results.

Needs the playwright Python package and a Chromium (Debian: ``apt-get install chromium``); playwright's
own browser download is not used.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions"]

# Page-side helper: the pixel position (page coordinates) of a region's polygon centre on the region map.
REGION_POINT_JS = """
([region]) => {
  const div = document.querySelector('[data-region-click][data-figure="figure-region-map"]');
  if (!div || !div._fullLayout) return null;
  const trace = div._fullData.find(t => t.meta === region);
  if (!trace) return null;
  const xs = trace.x.filter(v => v !== null), ys = trace.y.filter(v => v !== null);
  const cx = xs.reduce((a, b) => a + b, 0) / xs.length, cy = ys.reduce((a, b) => a + b, 0) / ys.length;
  const box = div.getBoundingClientRect(), size = div._fullLayout._size;
  const xa = div._fullLayout.xaxis, ya = div._fullLayout.yaxis;
  return {x: box.left + window.scrollX + xa._offset + xa.l2p(cx),
          y: box.top + window.scrollY + ya._offset + ya.l2p(cy), width: size.w};
}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--region", default="left_eye", help="region to hover and click on the map")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    options = parser.parse_args(argv)

    problems: list[str] = []
    console: list[str] = []
    requests: list[str] = []
    summary: dict = {"report": str(options.report), "bytes": options.report.stat().st_size}
    stem = options.out.with_suffix("")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=options.chromium, args=ARGS)
        context = browser.new_context(viewport={"width": options.width, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(options.report.resolve().as_uri(), wait_until="load")
        page.wait_for_function("[...document.querySelectorAll('[data-figure]')]"
                               ".every(d => d._fullLayout && d.querySelector('.main-svg'))", timeout=20000)
        page.wait_for_timeout(500)
        figures = page.eval_on_selector_all("[data-figure]", "ds => ds.map(d => [d.dataset.figure, !!d._fullLayout])")
        summary["figures"] = dict(figures)
        problems += [f"figure {name} did not draw" for name, drawn in figures if not drawn]
        page.screenshot(path=str(options.out), full_page=True)
        share = page.eval_on_selector_all(".modebar-btn", "bs => bs.map(b => b.getAttribute('data-title'))"
                                                          ".filter(t => /share|cloud|studio/i.test(t || ''))")
        if share:
            problems.append(f"modebar offers to send the chart away: {sorted(set(share))}")

        # Hover and click a region on the map. The viewport is made tall enough for the whole map section
        # first: a full-page screenshot resizes the window, plotly then redraws and drops the hover label.
        map_height = page.eval_on_selector("#map", "s => s.getBoundingClientRect().height")
        page.set_viewport_size({"width": options.width, "height": max(900, int(map_height) + 40)})
        page.wait_for_timeout(300)
        point = page.evaluate(REGION_POINT_JS, [options.region])
        if point is None:
            problems.append(f"region {options.region} not found on the region map")
        else:
            page.mouse.move(point["x"] - 40, point["y"] - 40)
            page.evaluate("([x, y]) => window.scrollTo(0, y - 300)", [point["x"], point["y"]])
            point = page.evaluate(REGION_POINT_JS, [options.region])
            viewport_y = point["y"] - page.evaluate("window.scrollY")
            page.mouse.move(point["x"], viewport_y)
            page.wait_for_timeout(400)
            hover = page.evaluate("[...document.querySelectorAll('.hovertext')].map(n => n.textContent)")
            summary["hover"] = hover
            if not hover:
                problems.append("no hover label over the region map")
            page.mouse.click(point["x"], viewport_y)
            page.wait_for_timeout(400)
            shown = page.get_attribute("#region-detail", "data-region")
            opened = page.evaluate(f"document.getElementById('patches-{options.region}')?.open ?? null")
            summary["click"] = {"detail_region": shown, "patches_open": opened,
                                "thumbnails": page.eval_on_selector_all("#region-detail img", "i => i.length")}
            if shown != options.region:
                problems.append(f"click on {options.region} showed {shown!r} below the map")
            page.mouse.move(point["x"], viewport_y)
            page.wait_for_timeout(400)
            box = page.eval_on_selector("#map", "s => { const b = s.getBoundingClientRect(); "
                                                 "return {x: b.left, y: b.top, width: b.width, height: b.height}; }")
            if box["y"] < 0 or box["y"] + box["height"] > page.viewport_size["height"]:
                # bring the whole section into view, then hover again (scrolling moves the map under the mouse)
                page.evaluate("(y) => window.scrollBy(0, y - 20)", box["y"])
                point = page.evaluate(REGION_POINT_JS, [options.region])
                viewport_y = point["y"] - page.evaluate("window.scrollY")
                page.mouse.move(point["x"] - 1, viewport_y)
                page.mouse.move(point["x"], viewport_y)
                page.wait_for_timeout(400)
                box = page.eval_on_selector("#map", "s => { const b = s.getBoundingClientRect(); "
                                                     "return {x: b.left, y: b.top, width: b.width, height: b.height}; }")
            page.screenshot(path=f"{stem}-map.png", clip=box)
        page.set_viewport_size({"width": options.width, "height": 900})
        page.wait_for_timeout(300)

        # A patch under the map opens its whole image, with the attention and the face regions.
        patch = page.query_selector("#region-detail button.patch-open")
        if patch is None:
            problems.append("no patch to open under the map")
        else:
            patch.click()
            page.wait_for_timeout(300)
            view = page.evaluate("""() => ({open: document.getElementById('image-view').open,
                title: document.getElementById('viewer-title').textContent,
                pictures: ['viewer-attention', 'viewer-regions'].map(id => document.getElementById(id).naturalWidth)})""")
            summary["view"] = view
            if not view["open"] or not all(view["pictures"]):
                problems.append(f"a patch did not open its whole-image view: {view}")
            page.screenshot(path=f"{stem}-view.png")
            page.keyboard.press("Escape")
            page.wait_for_timeout(200)

        # Every picture decoded (they come from the embedded results).
        broken = page.eval_on_selector_all("img[data-picture]", "is => is.filter(i => !(i.naturalWidth > 0)).length")
        summary["pictures"] = page.eval_on_selector_all("img[data-picture]", "is => is.length")
        if broken:
            problems.append(f"{broken} pictures did not decode")

        # The image browser sorts by a region's share.
        if page.query_selector("#browser-grid") is not None:
            index = page.evaluate(f"""[...document.querySelectorAll('#browser-sort option')]
                .findIndex(o => o.value === 'region' && o.dataset.key === {json.dumps(options.region)})""")
            if index >= 0:
                page.select_option("#browser-sort", index=index)
                values = [float(v) for v in
                          page.eval_on_selector_all("#browser-grid .tile", "ts => ts.map(t => t.dataset.value)")]
                summary["browser"] = {"tiles": len(values), "count": page.text_content("#browser-count")}
                if values != sorted(values, reverse=True):
                    problems.append(f"the image browser did not sort by {options.region}")
                page.locator("#browser").screenshot(path=f"{stem}-browser.png")
                page.select_option("#browser-sort", index=0)

        # A click on the ranking's first bar shows the top region's patches.
        bar = page.query_selector('[data-figure="figure-ranked"] .trace.bars .point path')
        if bar is not None:
            bar.scroll_into_view_if_needed()
            box = bar.bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_timeout(300)
            top = page.evaluate("JSON.parse(document.getElementById('reportgen-results').textContent)"
                                ".regions[0].id")
            shown = page.get_attribute("#region-detail", "data-region")
            summary["bar_click"] = shown
            if shown != top:
                problems.append(f"click on the first bar showed {shown!r}, not {top!r}")

        # The download button saves exactly the embedded results.
        with page.expect_download(timeout=10000) as info:
            page.click("#download-results")
        downloaded = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
        embedded = json.loads(page.text_content("#reportgen-results"))
        summary["download"] = {"name": info.value.suggested_filename, "equal": downloaded == embedded}
        if downloaded != embedded:
            problems.append("downloaded JSON differs from the embedded results")
        with page.expect_download(timeout=10000) as info:
            page.click("#download-regions")
        rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig"))))
        expected = len(embedded.get("regions") or []) + sum(len(g.get("regions") or [])
                                                            for g in (embedded.get("groups") or {}).values())
        summary["csv"] = {"name": info.value.suggested_filename, "rows": len(rows)}
        if len(rows) != expected or (rows and rows[0]["id"] != embedded["regions"][0]["id"]):
            problems.append(f"downloaded CSV has {len(rows)} rows, expected {expected}")

        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.wait_for_timeout(500)
        page.screenshot(path=f"{stem}-phone.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        summary["phone_overflow_px"] = overflow
        if overflow > 0:
            problems.append(f"on a 390 px wide screen the page scrolls sideways by {overflow} px")

        # Print from the desktop width, as a person would; record whether the page saw beforeprint.
        page.set_viewport_size({"width": options.width, "height": 900})
        page.wait_for_timeout(500)
        page.evaluate("window.addEventListener('beforeprint', () => { window.__beforeprint = true; })")
        page.emulate_media(media="print")
        page.pdf(path=f"{stem}-print.pdf", format="A4", print_background=True)
        summary["pdf_saw_beforeprint"] = page.evaluate("!!window.__beforeprint")
        page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        page.wait_for_timeout(500)
        page.screenshot(path=f"{stem}-print.png", full_page=True)
        browser.close()

    if shutil.which("pdftoppm"):  # the printed pages themselves, to look at
        subprocess.run(["pdftoppm", "-png", "-r", "60", f"{stem}-print.pdf", f"{stem}-print"], check=False)
        summary["pdf_pages"] = len(list(options.out.parent.glob(f"{stem.name}-print-*.png")))

    page_url = options.report.resolve().as_uri()
    remote = [url for url in requests if not url.startswith(("data:", "blob:")) and url != page_url]
    errors = [line for line in console if line.startswith(("error", "warning"))]
    problems += [f"request: {url}" for url in remote] + [f"console {line}" for line in errors]
    summary["requests"] = {"total": len(requests), "non_data": remote}
    summary["console"] = console
    summary["problems"] = problems
    print(json.dumps(summary, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
