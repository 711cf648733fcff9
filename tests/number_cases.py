"""How numbers read in the report: one table of cases for the Python rule (reportgen/report/format.py)
and its mirror in templates/report.js. test_report.py checks the Python side, test_browser.py runs the
page's own formatters in Chromium on the same cases, so the tables and the pictures' facts cannot drift
apart again (they did: 0.04 read "4%" in a table and "4.0%" in the browser).
"""

from __future__ import annotations

NAN, INFINITY = float("nan"), float("inf")

# (share 0-1, text): the ``percent`` filter and report.js's percent().
PERCENT = [
    (0.183, "18%"), (0.045, "4.5%"), (0.04, "4%"), (0.003, "0.3%"), (0.0004, "<0.1%"), (0.0005, "0.1%"),
    (0.0, "0%"), (-0.0, "0%"), (0, "0%"), (1, "100%"), (0.999, "100%"), (0.0994, "9.9%"), (0.0995, "10%"),
    # exact binary ties round away from zero, as JavaScript's toFixed does: 0.25 -> 0.3, 1.25 -> 1.3
    (0.0025, "0.3%"), (0.0125, "1.3%"),
    (None, "–"), ("0.5", "–"), (True, "–"), (NAN, "–"), (INFINITY, "–"),
]

# (probability 0-1, text): the ``probability`` filter and report.js's probability().
PROBABILITY = [
    (0.93, "0.93"), (1, "1.00"), (0.0, "0.00"), (0.005, "0.01"), (0.995, "0.99"),
    (0.125, "0.13"), (0.375, "0.38"),  # exact ties: away from zero
    (None, "–"), (False, "–"), (NAN, "–"),
]

# (value, decimals, text): format.fixed against the browser's own Number.prototype.toFixed.
FIXED = [
    (0.25, 1, "0.3"), (2.5, 0, "3"), (0.125, 2, "0.13"), (1.005, 2, "1.00"), (-2.5, 0, "-3"), (-0.04, 1, "-0.0"),
    (-0.0, 1, "0.0"), (1e-7, 2, "0.00"), (123456.5, 0, "123457"), (9.95, 1, "9.9"), (0.045, 2, "0.04"),
]

# Python only (no mirror in report.js): the other filters of the rule. (filter name, value, text)
FILTERS = [
    ("times", 3.14, "3.1×"), ("times", 12.4, "12×"), ("times", 0.456, "0.5×"), ("times", 0.047, "0.05×"),
    ("times", 9.95, "10×"), ("times", 2.25, "2.3×"), ("times", None, "–"),
    ("signed", -0.8, "−0.8"), ("signed", -0.001, "0"), ("signed", 0.04, "0.04"),
    ("points", 0.5, "50"), ("points", 0.032, "3.2"), ("points", -0.0007, "−0.07"), ("points", -0.00001, "0"),
    ("correlation", -0.045, "−0.04"), ("correlation", 0.125, "0.13"), ("correlation", None, "–"),
    ("duration", 2.25, "2.3 s"), ("duration", 42.5, "43 s"), ("duration", 75, "1 min 15 s"),
    ("count", 2000, "2\u2009000"), ("count", None, "–"),
]
