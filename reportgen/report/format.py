"""The report's number formatting: the jinja filters (``times``, ``percent``, ``points``...) and the
words for a probability drop, shared by the templates, the figures' hover texts and the view.

Every filter takes what the results hold (a number, an interval as a two-item list, or ``None`` for a
value that could not be measured) and returns text; anything that is not a finite number shows as "–".
"""

from __future__ import annotations

import math

from ..findings import percent_text, signed_text, times_text


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def times(value) -> str:
    return f"{times_text(value)}×" if is_number(value) else "–"


def percent(value) -> str:
    return percent_text(value) if is_number(value) else "–"


def bounds(interval) -> tuple | None:
    """(low, high) of a 95% interval as the results hold it (a two-item list), or None when not measured."""
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(is_number(v) for v in interval):
        return tuple(interval)
    return None


def ci_times(interval) -> str:
    pair = bounds(interval)
    return f"{times_text(pair[0])}–{times_text(pair[1])}" if pair else "–"


def ci_percent(interval) -> str:
    pair = bounds(interval)
    return f"{percent_text(pair[0])}–{percent_text(pair[1])}" if pair else "–"


def signed(value) -> str:
    return signed_text(value).replace("-", "−") if is_number(value) else "–"


def ci_signed(interval) -> str:
    pair = bounds(interval)
    return f"{signed(pair[0])} to {signed(pair[1])}" if pair else "–"


def points(fraction) -> str:
    """A change of probability (0-1) in percentage points: 50, 3.2, −0.07."""
    return signed(100 * fraction) if is_number(fraction) else "–"


def ci_points(interval) -> str:
    pair = bounds(interval)
    if not pair:
        return "–"
    low, high = (points(v) for v in pair)
    # "−3 to −1" when a bound shows a minus sign: a dash there would read as one.
    return f"{low} to {high}" if "−" in low + high else f"{low}–{high}"


def correlation(value) -> str:
    return f"{value:.2f}".replace("-", "−") if is_number(value) else "–"


def ci_correlation(interval) -> str:
    pair = bounds(interval)
    return f"{correlation(pair[0])} to {correlation(pair[1])}" if pair else "–"


def duration(seconds) -> str:
    if not is_number(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def count(value) -> str:
    return f"{value:,}".replace(",", "\u2009") if isinstance(value, int) and not isinstance(value, bool) else \
        ("–" if value is None else str(value))


def drop_words(effect: float, interval=None) -> str:
    """A drop of the class probability (0-1) and its 95% interval as words: "lowers the class probability by
    50 points (95% CI 42–59)"; a negative drop "raises ... by 0.7 points (95% CI 0.2–1.2)"."""
    pair = bounds(interval)
    if effect < 0:
        words, effect, pair = "raises", -effect, (-pair[1], -pair[0]) if pair else None
    else:
        words = "lowers"
    return f"{words} the class probability by {points(effect)} points" + \
        (f" (95% CI {ci_points(pair)})" if pair else "")


# The jinja filters, by the names the templates use (``colour`` comes from figures.py: it is the maps' scale).
FILTERS = {
    "times": times, "percent": percent, "ci_times": ci_times, "ci_percent": ci_percent, "signed": signed,
    "ci_signed": ci_signed, "duration": duration, "count": count, "points": points, "ci_points": ci_points,
    "correlation": correlation, "ci_correlation": ci_correlation,
}
