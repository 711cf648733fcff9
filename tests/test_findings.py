"""findings(results): a few plain sentences that state numbers with uncertainty and claim no more."""

from __future__ import annotations

import copy

import pytest

from report_fixture import build_results
from reportgen.results.findings import MAX_FINDINGS, findings, percent_text, times_text


def region(id_, label, density, ci, share=0.05, estimated=False, n=126):
    return {"id": id_, "label": label, "estimated": estimated, "share": share, "share_ci": [share * 0.9, share * 1.1],
            "area": share / density, "density": density, "ci": list(ci), "n": n}


def results_with(regions=None, outside_share=0.25, comparisons=(), groups=None, counts=None, failures=()):
    regions = regions if regions is not None else [
        region("left_eye", "Left eye", 3.1, (2.7, 3.5), share=0.18),
        region("nose", "Nose", 1.9, (1.6, 2.2), share=0.12),
        region("chin", "Chin", 0.4, (0.3, 0.5), share=0.02),
    ]
    return {
        "schema": "reportgen/1",
        "counts": counts or {"images": 128, "aligned": 126, "failed": 2},
        "failures": list(failures),
        "regions": regions,
        "region_groups": [
            {"id": "eyes", "label": "Eyes", "share": 0.2, "share_ci": [0.18, 0.22], "density": 2.9, "ci": [2.5, 3.3]},
            {"id": "outside_face", "label": "Outside the face", "share": outside_share,
             "share_ci": [outside_share - 0.03, outside_share + 0.03], "density": 0.6, "ci": [0.5, 0.7]},
        ],
        "groups": groups or {},
        "comparisons": list(comparisons),
    }


def comparison(rows, n_a=66, n_b=60):
    return {"column": "protected", "a": "protected=0", "b": "protected=1", "n_a": n_a, "n_b": n_b, "regions": rows}


def difference(id_, label, a, b, ci, beyond):
    return {"id": id_, "label": label, "density_a": a, "density_b": b, "difference": round(b - a, 6), "ci": list(ci),
            "beyond_noise": beyond}


def of_kind(items, kind):
    return [f for f in items if f["kind"] == kind]


def test_top_region_states_density_ci_and_share():
    top = of_kind(findings(results_with()), "top_region")[0]
    assert top["severity"] == "info"
    assert top["text"] == ("The model looks most at the left eye: 3.1x an even spread (95% CI 2.7-3.5), "
                           "18% of its attention.")


def test_top_region_close_behind_is_called_uncertain():
    regions = [region("left_eye", "Left eye", 3.1, (2.7, 3.5)), region("right_eye", "Right eye", 2.9, (2.5, 3.3))]
    text = of_kind(findings(results_with(regions)), "top_region")[0]["text"]
    assert "The right eye is close behind (2.9x, 95% CI 2.5-3.3), so their order is not certain." in text


def test_top_region_within_noise_of_even_spread_claims_nothing():
    regions = [region("nose", "Nose", 1.2, (0.9, 1.5)), region("chin", "Chin", 1.0, (0.8, 1.2))]
    text = of_kind(findings(results_with(regions)), "top_region")[0]["text"]
    assert text.startswith("No region clearly stands out")
    assert "1.2x" in text and "0.9-1.5" in text
    assert "looks most at" not in text


def test_estimated_top_region_says_its_outline_is_approximate():
    regions = [region("hair", "Hair", 2.5, (2.2, 2.8), estimated=True), region("nose", "Nose", 1.1, (0.9, 1.3))]
    text = of_kind(findings(results_with(regions)), "top_region")[0]["text"]
    assert "the hair" in text and "approximate" in text


def test_outside_face_share_above_40_percent_warns_of_environment_bias():
    finding = of_kind(findings(results_with(outside_share=0.46)), "outside_face")[0]
    assert finding["severity"] == "warning"
    assert "46%" in finding["text"] and "possible environment bias" in finding["text"]
    assert "43-49%" in finding["text"]


def test_outside_face_share_below_40_percent_is_information_without_bias_claim():
    finding = of_kind(findings(results_with(outside_share=0.25)), "outside_face")[0]
    assert finding["severity"] == "info"
    assert "25%" in finding["text"] and "bias" not in finding["text"]


def test_group_difference_names_the_largest_difference_beyond_noise():
    rows = [
        difference("nose", "Nose", 3.0, 4.5, (-0.2, 3.2), beyond=False),  # larger, but within noise: ignored
        difference("hair", "Hair", 1.1, 2.3, (0.8, 1.6), beyond=True),
        difference("chin", "Chin", 0.5, 0.8, (0.1, 0.5), beyond=True),
    ]
    finding = of_kind(findings(results_with(comparisons=[comparison(rows)])), "group_difference")[0]
    assert finding["severity"] == "warning"
    assert finding["text"].startswith("For protected=1 the model looks 2.1x more at the hair than for protected=0")
    assert "(2.3x vs 1.1x an even spread; difference 1.2, 95% CI 0.8-1.6)" in finding["text"]
    assert "2 of 3 regions differ beyond noise" in finding["text"]


def test_group_difference_below_reads_as_less_with_negative_interval():
    rows = [difference("hair", "Hair", 2.3, 1.1, (-1.6, -0.8), beyond=True)]
    text = of_kind(findings(results_with(comparisons=[comparison(rows)])), "group_difference")[0]["text"]
    assert "For protected=1 the model looks at the hair only 0.5x as much as for protected=0" in text
    assert "95% CI -1.6 to -0.8" in text


def test_lone_difference_among_many_regions_is_flagged_as_possible_chance():
    rows = [difference(f"r{i}", f"Region {i}", 1.0, 1.05, (-0.1, 0.2), beyond=False) for i in range(16)]
    rows.append(difference("hair", "Hair", 1.0, 1.3, (0.05, 0.55), beyond=True))
    text = of_kind(findings(results_with(comparisons=[comparison(rows)])), "group_difference")[0]["text"]
    assert "1 of 17 regions" in text and "by chance alone" in text


def test_no_difference_beyond_noise_is_stated_without_claiming_equality():
    rows = [difference("hair", "Hair", 1.1, 1.3, (-0.1, 0.5), beyond=False),
            difference("nose", "Nose", 2.0, 1.9, (-0.4, 0.2), beyond=False)]
    finding = of_kind(findings(results_with(comparisons=[comparison(rows)])), "no_group_difference")[0]
    assert finding["severity"] == "info"
    assert "No region's attention differs beyond noise between protected=0 and protected=1" in finding["text"]
    assert "does not prove" in finding["text"]


def test_small_group_is_warned_and_its_comparison_not_interpreted():
    rows = [difference("hair", "Hair", 1.1, 2.3, (0.8, 1.6), beyond=True)]
    groups = {"protected=0": {"column": "protected", "value": "0", "n": 66},
              "protected=1": {"column": "protected", "value": "1", "n": 12}}
    items = findings(results_with(comparisons=[comparison(rows, n_b=12)], groups=groups))
    small = of_kind(items, "small_groups")[0]
    assert small["severity"] == "warning"
    assert "protected=1 has only 12 images" in small["text"] and "too small to conclude" in small["text"].lower()
    assert not of_kind(items, "group_difference")


def test_many_failures_warn_and_few_are_information():
    many = findings(results_with(counts={"images": 100, "aligned": 85, "failed": 15},
                                 failures=[{"image": f"{i}.jpg", "reason": "no face found"} for i in range(15)]))
    warning = of_kind(many, "failures")[0]
    assert warning["severity"] == "warning"
    assert "15 of 100 images (15%) could not be analysed" in warning["text"]
    assert "no face found" in warning["text"]
    few = of_kind(findings(results_with()), "failures")
    assert all(f["severity"] == "info" for f in few)


def test_three_to_five_findings_with_warnings_kept():
    rows = [difference("hair", "Hair", 1.1, 2.3, (0.8, 1.6), beyond=True)]
    crowded = results_with(outside_share=0.5, comparisons=[comparison(rows)] * 4,
                           counts={"images": 100, "aligned": 80, "failed": 20})
    items = findings(crowded)
    assert 3 <= len(items) <= MAX_FINDINGS
    assert [f["severity"] for f in items].count("warning") >= 3
    assert 3 <= len(findings(results_with())) <= MAX_FINDINGS


def test_fixture_findings_are_three_to_five_well_formed_sentences():
    items = findings(build_results())
    assert 3 <= len(items) <= MAX_FINDINGS
    for item in items:
        assert set(item) == {"kind", "severity", "text"}
        assert item["severity"] in ("info", "warning")
        assert item["text"].endswith(".")
    assert items[0]["kind"] == "top_region"


def test_no_regions_gives_a_warning_instead_of_failing():
    items = findings({"counts": {"images": 3, "aligned": 0, "failed": 3}, "regions": []})
    assert items[0]["kind"] == "no_regions" and items[0]["severity"] == "warning"


def test_findings_do_not_change_the_results():
    results = build_results()
    before = copy.deepcopy(results)
    findings(results)
    assert results == before


@pytest.mark.parametrize("fraction, text", [(0.183, "18%"), (0.045, "4.5%"), (0.04, "4%"), (0.003, "0.3%"),
                                            (0.0004, "<0.1%"), (0.0, "0%"), (0.999, "100%")])
def test_percentages_are_rounded_sensibly(fraction, text):
    assert percent_text(fraction) == text


@pytest.mark.parametrize("value, text", [(3.14, "3.1"), (12.4, "12"), (0.456, "0.5"), (0.047, "0.05")])
def test_densities_are_rounded_sensibly(value, text):
    assert times_text(value) == text


def _check_findings(results: dict) -> dict:
    return {f["kind"]: f for f in findings(results)}


def test_deletion_check_finding_states_the_curves_difference_in_log_odds_and_points():
    results = build_results(with_groups=False)
    # information when passed, so kept only while there is room: leave out the other candidates
    text = _check_findings(dict(results, sanity=None, regions=results["regions"][:1]))["faithfulness"]["text"]
    assert text.startswith("Deletion check: replacing each image's regions with the mean colour in the order the "
                           "explanation ranks them lowers the model's evidence for the class faster than random orders")
    assert ("averaged over 0-50% of the image: 2.5 in log-odds of the explained class, 95% CI 2.0-3.0; "
            "22 points of class probability; 64 images") in text


def test_failed_deletion_check_is_a_warning_near_the_top():
    results = build_results(with_groups=False)
    results["faithfulness"].update(difference=0.05, difference_ci=[-0.21, 0.3], faithful=False)
    found = findings(results)
    warning = next(f for f in found if f["kind"] == "faithfulness")
    assert warning["severity"] == "warning" and found.index(warning) <= 1
    assert warning["text"].startswith("The explanation may not be faithful:")
    assert "does not lower the model's evidence for the class clearly faster than random orders" in warning["text"]


def test_sanity_finding_counts_zero_maps_as_changed():
    results = build_results(with_groups=False)
    results["sanity"].update(verdict="failed", rank_correlation=0.86, rank_correlation_ci=[0.8, 0.91])
    warning = _check_findings(results)["sanity"]
    assert warning["severity"] == "warning"
    assert ("with every weight of the model randomised, the regions rank almost the same (rank correlation 0.86, "
            "95% CI 0.80-0.91, 64 images, 2 of them with a map that became zero, counted as changed)") in warning["text"]


def test_older_single_region_deletion_results_keep_their_finding():
    from report_fixture import LEGACY_FAITHFULNESS

    results = build_results(with_groups=False)
    results["faithfulness"] = dict(LEGACY_FAITHFULNESS, faithful=False)
    warning = _check_findings(results)["faithfulness"]
    assert "lowers the class probability by 23 points (95% CI 18-28), not clearly more than replacing a random " \
           "region of similar area" in warning["text"]
