"""How big the HTML report gets for large runs, and which parts grow with the number of images.

    PYTHONPATH=. python benchmarks/report_size.py                 # 1,000 and 10,000 images
    PYTHONPATH=. python benchmarks/report_size.py --sizes 1000    # one size only

Runs the real ``reportgen.analyze`` on the bundled samples (120 portraits, the demo model), replicated
under different names (``c000/…`` … ``c083/…``, symbolic links) to N annotation rows, renders the report,
and prints its size with a breakdown: plotly.js, the embedded results JSON (and the pictures in it, by
kind), the figures, and the page itself. Targets: < 10 MB for 1,000 images, < 15 MB for 10,000, with
most of the size independent of N. Exits non-zero when a target is missed.

Copies have identical bytes, so they share one landmark cache entry (the cache is keyed by the file's
hash): only the first 120 images run the face detector. Everything else (model, Grad-CAM, region
scores, canonical face, patches, views, browser sample) runs for every row. Copies also tie on every
score; the heaps then keep copies under different names, so the number of whole-image views is near
its bound (regions × patches per region) as in a real large run, and the bound is printed too.

Until the analysis fills ``results["views"]`` and ``results["browser"]`` itself, this script does what
it will do (``RunState.add_image``): hand the landmarks to ``TopPatches.offer`` (for the region views'
outlines), feed an ``ImageBrowser`` with each image's shares and groups, and add
``views = patches.views()`` and ``browser = browser.summary()`` to the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from reportgen.analysis import analyze
from reportgen.faces.regions import REGION_IDS
from reportgen.inputs.config import RunConfig, make_config
from reportgen.report.render import plotly_js, render_html, script_json
from reportgen.resources import samples_dir
from reportgen.results import patches as patches_module
from reportgen.results.scores import region_scores

MB = 1_000_000
TARGETS = {1000: 10 * MB, 10000: 15 * MB}


def replicated_dataset(root: Path, rows: int) -> tuple[Path, Path, dict[str, dict]]:
    """N annotation rows over the sample images, copy k of image i named c{k:03d}/{name} (a symlink)."""
    source = samples_dir()
    lines = (source / "annotations.csv").read_text().splitlines()
    header, body = lines[0], [line for line in lines[1:] if line.strip()]
    columns = header.split(",")
    images = root / "images"
    out, groups = [header], {}
    for i in range(rows):
        name, *rest = body[i % len(body)].split(",")
        copy = f"c{i // len(body):03d}/{name}"
        link = images / copy
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source / "images" / name, link)
        out.append(",".join([copy, *rest]))
        groups[copy] = dict(zip(columns[1:], rest))
    annotations = root / f"annotations-{rows}.csv"
    annotations.write_text("\n".join(out) + "\n")
    return images, annotations, groups


class Feed:
    """Gives TopPatches.offer its landmarks and feeds an ImageBrowser, as analysis.py will (see the module
    docstring). Patches offered without landmarks wait for the Examples.offer call that follows them."""

    def __init__(self, groups: dict[str, dict], protected: list[str]):
        self.groups, self.protected = groups, protected
        self.browser = patches_module.ImageBrowser()
        self.pending = self.patches = None
        self.original = (patches_module.TopPatches.offer, patches_module.Examples.offer,
                         patches_module.TopPatches.summary)

    def __enter__(self):
        feed, (offer_patches, offer_examples, summary) = self, self.original

        def patches_summary(patches):
            feed.patches = patches  # the run's TopPatches, for its views()
            return summary(patches)

        def patches_offer(patches, seen, attribution, labels, shares, info, landmarks=None):
            if landmarks is None:
                feed.pending = (patches, seen, attribution, labels, shares, info)
            else:
                offer_patches(patches, seen, attribution, labels, shares, info, landmarks=landmarks)

        def examples_offer(examples, seen, attribution, labels, landmarks, info):
            info = dict(info, groups={c: feed.groups[info["image"]][c] for c in feed.protected})
            if feed.pending is not None and feed.pending[1] is seen:
                patches, _, _, _, shares, _ = feed.pending
                offer_patches(patches, seen, attribution, labels, shares, info, landmarks=landmarks)
            feed.pending = None
            shares = region_scores(attribution, labels)["share"][:len(REGION_IDS)]
            feed.browser.offer(seen, attribution, labels, landmarks, info, shares)
            offer_examples(examples, seen, attribution, labels, landmarks, info)

        (patches_module.TopPatches.offer, patches_module.Examples.offer,
         patches_module.TopPatches.summary) = patches_offer, examples_offer, patches_summary
        return self

    def __exit__(self, *_):
        (patches_module.TopPatches.offer, patches_module.Examples.offer,
         patches_module.TopPatches.summary) = self.original


def _pictures(value) -> int:
    """Bytes of the data URIs anywhere in ``value``."""
    if isinstance(value, dict):
        return sum(_pictures(v) for v in value.values())
    if isinstance(value, list):
        return sum(_pictures(v) for v in value)
    return len(value) if isinstance(value, str) and value.startswith("data:image/") else 0


def measure(rows: int, work: Path) -> dict:
    images, annotations, groups = replicated_dataset(work, rows)
    options = dict(images=images, annotations=annotations, cache_dir=work / "landmarks", out=work / f"report-{rows}.html")
    if "resume" in {f.name for f in dataclasses.fields(RunConfig)}:
        options["resume"] = False  # never continue from a checkpoint of an earlier measurement
    config = make_config(samples_dir() / "demo.toml", **options)
    for stale in work.glob(f"report-{rows}*.partial.json"):
        stale.unlink()
    started = time.time()
    with Feed(groups, list(config.protected)) as feed:
        results = analyze(config)
    seconds = time.time() - started
    if "views" not in results:
        results["views"] = feed.patches.views()
    if "browser" not in results:
        results["browser"] = feed.browser.summary()
    started = time.time()
    html = render_html(results)
    render_seconds = time.time() - started
    page = len(html.encode("utf-8"))
    plotly = len(plotly_js().encode("utf-8"))
    embedded = len(str(script_json(results)).encode("utf-8"))
    kinds = {kind: _pictures(results.get(kind)) for kind in ("patches", "views", "examples", "browser")}
    figures = sum(len(part.split("</script>", 1)[0]) for part in html.split('<script type="application/json" id="figure-')[1:])
    json_text = json.dumps(results, ensure_ascii=False, allow_nan=False)
    per_view = kinds["views"] / max(1, len(results.get("views") or {}))
    bound = len(REGION_IDS) * config.patches
    return {
        "rows": rows, "analysis_seconds": round(seconds, 1), "render_seconds": round(render_seconds, 2),
        "scored": results["counts"].get("scored"), "html_bytes": page, "plotly_js": plotly,
        "results_json": embedded, "pictures": kinds, "figures": figures,
        "rest": page - plotly - embedded - figures, "json_file_bytes": len(json_text.encode("utf-8")),
        "views": len(results.get("views") or {}), "views_bound": bound,
        "html_bytes_if_views_at_bound": int(page + per_view * (bound - len(results.get("views") or {}))),
        "browser": {k: results["browser"][k] for k in ("total_seen", "sampled", "highest", "lowest", "random")},
        "failures": len(results.get("failures") or []),
    }


def report(row: dict) -> str:
    mb = lambda b: f"{b / MB:6.2f} MB"  # noqa: E731
    pictures = row["pictures"]
    other_json = row["results_json"] - sum(pictures.values())
    shown_in_browser = row["browser"]["random"] + row["browser"]["highest"] + row["browser"]["lowest"]
    lines = [
        f"{row['rows']:,} images ({row['scored']:,} scored): analysis {row['analysis_seconds']} s, "
        f"render {row['render_seconds']} s",
        f"  HTML report            {mb(row['html_bytes'])}",
        f"    plotly.js            {mb(row['plotly_js'])}",
        f"    results JSON         {mb(row['results_json'])}",
        f"      patch thumbnails   {mb(pictures['patches'])}",
        f"      whole-image views  {mb(pictures['views'])}  ({row['views']} images; at most {row['views_bound']})",
        f"      examples           {mb(pictures['examples'])}",
        f"      image browser      {mb(pictures['browser'])}  ({shown_in_browser} of {row['browser']['total_seen']:,} images)",
        f"      numbers and text   {mb(other_json)}",
        f"    figures (plotly)     {mb(row['figures'])}",
        f"    page (HTML/CSS/JS)   {mb(row['rest'])}",
        f"  with views at their bound: {mb(row['html_bytes_if_views_at_bound'])}",
        f"  results.json file      {mb(row['json_file_bytes'])}",
    ]
    target = TARGETS.get(row["rows"])
    if target:
        verdict = "OK" if max(row["html_bytes"], row["html_bytes_if_views_at_bound"]) < target else "OVER"
        lines.append(f"  target < {target / MB:.0f} MB: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--work", type=Path, help="folder for the replicated dataset and cache [a temporary one]")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reportgen-size-") as temporary:
        work = options.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for size in options.sizes:
            row = measure(size, work)
            rows.append(row)
            print(report(row), flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = (last["html_bytes"] - first["html_bytes"]) / max(1, last["rows"] - first["rows"])
        print(f"growth from {first['rows']:,} to {last['rows']:,} images: "
              f"{(last['html_bytes'] - first['html_bytes']) / MB:+.2f} MB ({growth:.1f} bytes per extra image)")
    if options.json:
        options.json.write_text(json.dumps(rows, indent=2) + "\n")
    over = [r for r in rows if r["rows"] in TARGETS
            and max(r["html_bytes"], r["html_bytes_if_views_at_bound"]) >= TARGETS[r["rows"]]]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
