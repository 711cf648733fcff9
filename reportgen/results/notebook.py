"""What ``reportgen.analyze`` returns: the results dict (docs/results.md) that also shows itself in Jupyter.

``Results`` is a plain ``dict`` subclass, so ``results["regions"]``, ``json.dumps(results)``,
``reportgen.write_html(results, path)`` and merging work exactly as with the dict; in a notebook its
last-line display (``_repr_html_``) is a short summary: the run, the findings, the top regions, and
how to write the full interactive report. That summary is static HTML with every value escaped.
"""

from __future__ import annotations

from html import escape

TOP_REGIONS = 5  # rows of the region table in the notebook summary
SEVERITY_MARKS = {"warning": "&#9888;", "info": "&#8226;"}  # findings.py: info or warning


def _number_text(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


class Results(dict):
    """The results of a run: a plain dict (docs/results.md) that shows a summary in Jupyter.

    Write the full report with ``reportgen.write_html(results, "report.html")`` and the data with
    ``reportgen.write_json(results, "results.json")``."""

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs describing the run, in the order the notebook shows them."""
        run, counts = self.get("run") or {}, self.get("counts") or {}
        predictions = self.get("predictions") or {}
        target_class = run.get("target_class")
        rows = [
            ("model", f"{run.get('model_file')} (layer {run.get('layer')}, {run.get('method')})"),
            ("class explained", "each image's predicted class" if target_class is None else str(target_class)),
            ("images", f"{counts.get('images', 0)} listed, {counts.get('scored', 0)} analysed, "
                       f"{counts.get('failed', 0)} failed"),
        ]
        if predictions.get("accuracy") is not None:
            rows.append(("accuracy", f"{_percent(predictions['accuracy'])} of {predictions.get('n_labelled')} "
                                     f"labelled images"))
        if run.get("protected"):
            rows.append(("groups compared", ", ".join(str(c) for c in run["protected"])))
        rows.append(("ran on", f"{run.get('device')} in {_number_text(run.get('seconds'), 1)} s"))
        return rows

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{escape(label)}</th>"
                       f"<td style='text-align:left'>{escape(value)}</td></tr>" for label, value in self.summary_rows())
        findings = "".join(f"<li>{SEVERITY_MARKS.get(f.get('severity'), '&#8226;')} {escape(str(f.get('text', '')))}</li>"
                           for f in self.get("findings") or [])
        regions = [r for r in self.get("regions") or [] if r.get("density") is not None][:TOP_REGIONS]
        region_rows = "".join(
            f"<tr><td style='text-align:left'>{escape(str(r.get('label', r.get('id'))))}</td>"
            f"<td>{_number_text(r['density'])}</td><td>{escape(' to '.join(_number_text(v) for v in r.get('ci') or []))}</td>"
            f"<td>{_percent(r.get('share'))}</td></tr>" for r in regions)
        return (
            "<div class='reportgen-results'>"
            "<h4 style='margin:0.3em 0'>reportgen: which face regions drive the model</h4>"
            f"<table>{rows}</table>"
            + ("<p style='margin:0.6em 0 0.2em'><b>Findings</b></p>"
               f"<ul style='margin-top:0;padding-left:0.5em;list-style:none'>{findings}</ul>"
               if findings else "")
            + (f"<p style='margin:0.6em 0 0.2em'><b>Top regions</b> (density: 1.0 = attention spread evenly)</p>"
               "<table><tr><th style='text-align:left'>region</th><th>density</th><th>95% interval</th>"
               f"<th>share of attention</th></tr>{region_rows}</table>" if region_rows else "")
            + "<p style='margin-top:0.6em'>The full interactive report (maps, patches, groups, checks): "
            "<code>reportgen.write_html(results, \"report.html\")</code>; the data: "
            "<code>reportgen.write_json(results, \"results.json\")</code>.</p></div>"
        )
