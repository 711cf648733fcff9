"""Stage 4, results: maps and scores summed into the results dict (docs/results.md); no torch here.

    schema.py    the results dict's sections as types (docs/results.md in prose)
    scores.py    region share, area and density; running sums and the bootstrap
    patches.py   the top patches, examples and the image browser's sample (best.py: the K best records)
    checks.py    the trust checks' statistics (the model passes are explain/check_passes.py)
    state.py     RunState: running totals, partial files of shards, resume and merge
    findings.py  the plain-words findings
    manifest.py  what was run on what (file hashes, versions)
    privacy.py   paths made shareable
    drawing.py   pictures as data URIs (overlays, region sheets)
    notebook.py  Results: the results dict that shows a summary in Jupyter
"""

from .notebook import Results

__all__ = ["Results"]
