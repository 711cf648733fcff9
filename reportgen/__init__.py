"""reportgen: which face regions drive a vision model's decisions, as one self-contained HTML report.

Python API (the CLI only calls these)::

    import reportgen
    results = reportgen.analyze(images="imgs", annotations="ann.csv", target="task",
                                model_file="model.py", weights="weights.pt", layer="layer4")
    reportgen.write_html(results, "report.html")
    reportgen.write_json(results, "results.json")

In a notebook the model, the transform and the table of images may be objects instead of files:
``reportgen.analyze(images="imgs", annotations=rows, target="task", model=net, transform=preprocess)``
(see reportgen.inputs.run_inputs); the returned ``Results`` shows a summary when displayed.
"""

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it from here)


def __getattr__(name):
    # Imported lazily so `import reportgen` (and `reportgen --help`) stays fast without loading torch.
    if name == "analyze":
        from .analysis import analyze
        return analyze
    if name in ("write_html", "write_json", "render_html"):
        from . import report
        return getattr(report, name)
    if name in ("RunConfig", "make_config"):
        from .inputs import config
        return getattr(config, name)
    if name == "InputError":
        from .errors import InputError
        return InputError
    if name == "Results":
        from .results import Results
        return Results
    raise AttributeError(name)
