"""How numbers read in the report: one rule for the text (``times_text``, ``percent_text``...), the jinja
filters built on it (``times``, ``percent``, ``points``...), and the words for a probability drop.

The rule, used by the templates, the figures' hover texts, the findings and the command line:

- a density or ratio (``times_text``): 2 decimals under 0.095, 1 under 9.95, none above: 0.05, 3.1, 12;
- a share (``percent_text``): 0%, <0.1% under 0.05%, 1 decimal under 9.95% without a trailing ".0"
  (4.5%, 4%), none above (18%);
- a difference (``signed_text``) and a change of probability in percentage points (``points_text``):
  as a density, with "0" for what rounds to zero;
- a probability (``probability_text``) and a rank correlation (``correlation_text``): 2 decimals;
- a cosine similarity of face verification (``similarity_text``) and its threshold: 3 decimals (trained
  models put many pairs between 0.95 and 1, where 2 decimals would tell them apart too coarsely).

Decimals are rounded half away from zero on the number's exact binary value: what JavaScript's
``toFixed`` does, so ``templates/report.js``, which mirrors ``percent`` and ``probability``, shows the same
text for the same number (tests/number_cases.py holds the cases both sides are tested on); it mirrors
``similarity`` too.

Every filter takes what the results hold (a number, an interval as a two-item list, or ``None`` for a
value that could not be measured) and returns text; anything that is not a finite number shows as "–".
Filters write a minus as "−" (U+2212); the plain ``*_text`` functions, for sentences and the console,
write "-".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeGuard


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, as JavaScript's ``value.toFixed(digits)`` writes it: ties are
    rounded away from zero (2.5 -> 3, 0.125 -> 0.13), and -0.0 reads 0."""
    value = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
    if not math.isfinite(value) or abs(value) >= 1e15:  # beyond what Decimal's 28 digits round exactly
        return f"{value:.{digits}f}"
    return f"{Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):f}"


def times_text(value: float) -> str:
    """A density or ratio: 3.1, 0.45, 12."""
    if abs(value) >= 9.95:
        return fixed(value, 0)
    if abs(value) < 0.095:
        return fixed(value, 2)
    return fixed(value, 1)


def signed_text(value: float) -> str:
    """A difference of densities, with a minus sign when negative: 1.2, -0.8, 0.04."""
    text = times_text(value)
    return "0" if text.strip("-0.") == "" else text


def points_text(fraction: float) -> str:
    """A change of probability (0-1) in percentage points: 45, 3.2, -0.4."""
    return signed_text(100 * fraction)


def percent_number_text(fraction: float) -> str:
    """A share (0-1) as a percentage number, without the sign (for a range such as 38-45%): 18, 4.5, <0.1."""
    value = 100 * fraction
    if value == 0:
        return "0"
    if value < 0.05:
        return "<0.1"
    if value < 9.95:
        return fixed(value, 1).removesuffix(".0")
    return fixed(value, 0)


def percent_text(fraction: float) -> str:
    """A share (0-1) as a percentage: 18%, 4.5%, 4%, 0.3%, <0.1%, 0%."""
    return percent_number_text(fraction) + "%"


def probability_text(value: float) -> str:
    """A probability (0-1): 0.93."""
    return fixed(value, 2)


def similarity_text(value: float) -> str:
    """A cosine similarity (-1 to 1): 0.982, -0.125."""
    return fixed(value, 3)


def correlation_text(value: float) -> str:
    """A rank correlation (-1 to 1): 0.42, -0.05."""
    return fixed(value, 2)


def is_number(value: object) -> TypeGuard[float]:
    """A finite number (not a bool): what the results hold where a value could be measured."""
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


def _interval(interval, one: Callable[[float], str], joiner: str) -> str:
    """A 95% interval as "low–high" (or "low to high" where a bound may carry a minus sign), "–" if not measured."""
    pair = bounds(interval)
    return f"{one(pair[0])}{joiner}{one(pair[1])}" if pair else "–"


def _minus(text: str) -> str:
    """A true minus sign (U+2212) for the hyphen: "−0.07" reads as a negative number, "-0.07" as a dash."""
    return text.replace("-", "−")


def ci_times(interval) -> str:
    return _interval(interval, times_text, "–")


def ci_percent(interval) -> str:
    return _interval(interval, percent_text, "–")


def signed(value) -> str:
    return _minus(signed_text(value)) if is_number(value) else "–"


def ci_signed(interval) -> str:
    return _interval(interval, signed, " to ")


def points(fraction) -> str:
    """A change of probability (0-1) in percentage points: 50, 3.2, −0.07."""
    return _minus(points_text(fraction)) if is_number(fraction) else "–"


def probability(value) -> str:
    return probability_text(value) if is_number(value) else "–"


def similarity(value) -> str:
    """A cosine similarity: 0.982, −0.125."""
    return _minus(similarity_text(value)) if is_number(value) else "–"


def ci_points(interval) -> str:
    pair = bounds(interval)
    if not pair:
        return "–"
    low, high = (points(v) for v in pair)
    # "−3 to −1" when a bound shows a minus sign: a dash there would read as one.
    return f"{low} to {high}" if "−" in low + high else f"{low}–{high}"


def correlation(value) -> str:
    return _minus(correlation_text(value)) if is_number(value) else "–"


def ci_correlation(interval) -> str:
    return _interval(interval, correlation, " to ")


def duration(seconds) -> str:
    if not is_number(seconds):
        return "–"
    if seconds < 60:
        return f"{fixed(seconds, 1)} s" if seconds < 10 else f"{fixed(seconds, 0)} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def count(value) -> str:
    return f"{value:,}".replace(",", "\u2009") if isinstance(value, int) and not isinstance(value, bool) else \
        ("–" if value is None else str(value))


def drop_words(effect: float, interval=None, measure: str = "class probability") -> str:
    """A drop of the class probability (0-1) and its 95% interval as words: "lowers the class probability by
    50 points (95% CI 42–59)"; a negative drop "raises ... by 0.7 points (95% CI 0.2–1.2)". ``measure``
    names what dropped ("similarity" for face verification: points are then hundredths of similarity)."""
    pair = bounds(interval)
    if effect < 0:
        words, effect, pair = "raises", -effect, (-pair[1], -pair[0]) if pair else None
    else:
        words = "lowers"
    return f"{words} the {measure} by {points(effect)} points" + \
        (f" (95% CI {ci_points(pair)})" if pair else "")


# The jinja filters, by the names the templates use (``colour`` comes from figures.py: it is the maps' scale).
FILTERS = {
    "times": times, "percent": percent, "ci_times": ci_times, "ci_percent": ci_percent, "signed": signed,
    "ci_signed": ci_signed, "duration": duration, "count": count, "points": points, "ci_points": ci_points,
    "correlation": correlation, "ci_correlation": ci_correlation, "probability": probability,
    "similarity": similarity,
}
