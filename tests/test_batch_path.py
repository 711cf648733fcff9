"""The batch path (region sums, scores, bootstrap sums and the average-face warp for a whole batch at once, as
tensors) gives what the per-image reference gives: function by function, and on whole runs."""

import math
import pickle
import threading
import time

import numpy as np
import pytest
import torch

import reportgen
from reportgen.faces.canonical import MEAN_FACE, CanonicalFace, face_control, warp_batch
from reportgen.faces.regions import REGION_IDS, label_image
from reportgen.results import scores as scores_module
from reportgen.results.patches import Later
from reportgen.results.scores import (
    SCORED_IDS,
    RunningScores,
    _scattered_sums,
    batch_scores,
    bootstrap_weights,
    region_areas,
    region_scores,
    region_sums,
)
from reportgen.results.state import RunState

SIZE = 96  # model-input side of the synthetic faces


def _faces(count: int, seed: int = 0) -> list[np.ndarray]:
    """Landmarks of ``count`` faces of varied pose and shape in SIZE x SIZE pixels; the last ones reach past
    the picture's edge, so part of the canvas has no image behind it."""
    rng = np.random.default_rng(seed)
    faces = []
    for k in range(count):
        theta = rng.normal(0, 0.25)
        scale = rng.uniform(0.25, 0.4) if k < count - 2 else 0.6
        rotation = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        shift = rng.uniform(-8, 8, 2) + (0 if k < count - 2 else 30)
        faces.append((MEAN_FACE - 128) @ rotation.T + SIZE / 2 + shift + rng.normal(0, 1.0, (68, 2)))
    return faces


def _maps(count: int, seed: int = 0) -> np.ndarray:
    """float32 (count, SIZE, SIZE) maps: smooth ones (like Grad-CAM's), pixel noise (like integrated
    gradients'), one with zeros in most pixels and one zero everywhere."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    maps = []
    for k in range(count):
        if k % 3 == 0:
            cx, cy = rng.uniform(0.2, 0.8, 2)
            maps.append(np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 0.02))
        elif k % 3 == 1:
            maps.append(rng.random((SIZE, SIZE)))
        else:
            maps.append(np.where(rng.random((SIZE, SIZE)) < 0.1, rng.random((SIZE, SIZE)), 0.0))
    maps[-1] = np.zeros((SIZE, SIZE))
    return np.stack(maps).astype(np.float32)


def test_the_batch_warp_puts_each_map_where_the_per_image_warp_does():
    faces, maps = _faces(8), _maps(8)
    controls = torch.from_numpy(np.stack([face_control(face) for face in faces]))
    warped, inside = warp_batch(torch.from_numpy(maps), controls)
    assert warped.dtype == torch.float64 and warped.shape == (8, 128, 128)
    for k in range(7):  # the last map is zero everywhere: nothing to align (the per-image path skips it)
        expected, expected_inside, _ = CanonicalFace.align(maps[k].astype(np.float64), faces[k])
        assert (inside[k].numpy() == expected_inside.astype(bool)).all(), k
        # float32 sampling (see warp_batch's docstring): within 1e-5 of the largest value for pixel noise
        assert np.abs(warped[k].numpy() - expected).max() <= 2e-5 * expected.max(), k
    assert not inside[-1].all() and inside[-1].any()  # the faces past the edge do leave the picture
    assert (warped[-1] == 0).all()


def test_the_batch_warp_adds_up_to_the_per_image_average_face():
    faces, maps = _faces(6, seed=3), _maps(6, seed=3)[:5]
    faces = faces[:5]
    one_by_one, batched = CanonicalFace(), CanonicalFace()
    for face, values in zip(faces, maps):
        one_by_one.add(values.astype(np.float64), face)
    warped, inside = warp_batch(torch.from_numpy(maps), torch.from_numpy(np.stack([face_control(f) for f in faces])))
    batched.add_batch(warped.numpy(), inside.numpy())
    assert batched.faces == one_by_one.faces == 5
    np.testing.assert_allclose(batched.coverage, one_by_one.coverage)
    # float32 sampling: within 2e-5 of the largest value (these maps include pixel noise and sparse dots)
    np.testing.assert_allclose(batched.attention, one_by_one.attention, rtol=0, atol=2e-5 * one_by_one.attention.max())
    np.testing.assert_allclose(batched.landmark_sum, one_by_one.landmark_sum)
    _same(batched.mean_map(), one_by_one.mean_map(), absolute=5e-4)


def _labels(count: int, seed: int = 0) -> np.ndarray:
    return np.stack([label_image(face, SIZE, SIZE) for face in _faces(count, seed)])


def test_batch_region_scores_are_the_per_image_scores():
    maps, labels = _maps(9), _labels(9)
    sums = region_sums(torch.from_numpy(maps), torch.from_numpy(labels))
    assert sums.dtype == torch.float64 and sums.shape == (9, len(REGION_IDS))
    scores, scored = batch_scores(sums.numpy(), np.stack([region_areas(label) for label in labels]))
    assert scored.tolist() == [True] * 8 + [False]  # the zero map cannot be scored
    for k in range(8):
        expected = region_scores(maps[k].astype(np.float64), labels[k])
        for metric in expected:
            np.testing.assert_allclose(scores[metric][k], expected[metric], rtol=1e-12, atol=0, err_msg=metric)
    assert region_scores(maps[8].astype(np.float64), labels[8]) is None
    # The scatter-add a GPU runs (untested on a GPU here) gives the same sums on the CPU.
    np.testing.assert_allclose(_scattered_sums(torch.from_numpy(maps), torch.from_numpy(labels)).numpy(), sums.numpy(),
                               rtol=1e-12, atol=0)


def test_batch_region_scores_carry_region_ablation_effects_and_their_groups():
    maps, labels = _maps(4), _labels(4)
    rng = np.random.default_rng(1)
    effects = rng.normal(0, 0.1, (4, len(REGION_IDS)))
    effects[0, REGION_IDS.index("left_eye")] = np.nan  # a region the image does not show
    areas = np.stack([region_areas(label) for label in labels])
    scores, scored = batch_scores(region_sums(torch.from_numpy(maps), torch.from_numpy(labels)).numpy(), areas,
                                  effects)
    assert scored.all()  # with effects even the zero map counts (towards the mean effect)
    for k in range(4):
        expected = region_scores(maps[k].astype(np.float64), labels[k], effects[k])
        for metric in expected:
            np.testing.assert_allclose(scores[metric][k], expected[metric], rtol=1e-12, atol=0, err_msg=metric)
    assert np.isnan(scores["share"][3]).all()  # nothing to share out in the zero map


def test_batches_of_scores_add_up_to_the_same_means_intervals_and_resamples_as_images_one_by_one(monkeypatch):
    monkeypatch.setattr(scores_module, "PENDING_IMAGES", 5)  # several products along the way
    rng = np.random.default_rng(2)
    maps, labels = _maps(24, seed=5), _labels(24, seed=5)
    maps[-1] = rng.random((SIZE, SIZE))  # every image scored here
    one_by_one, batched = RunningScores(300), RunningScores(300)
    for k in range(24):
        one_by_one.add(region_scores(maps[k].astype(np.float64), labels[k]), bootstrap_weights(k, 300))
    for start in range(0, 24, 7):
        rows = range(start, min(start + 7, 24))
        sums = region_sums(torch.from_numpy(maps[start:start + 7]), torch.from_numpy(labels[start:start + 7]))
        scores, _ = batch_scores(sums.numpy(), np.stack([region_areas(labels[k]) for k in rows]))
        batched.add_batch(scores, np.stack([bootstrap_weights(k, 300).astype(np.uint8) for k in rows]))
    assert batched.images == one_by_one.images == 24
    for metric in scores_module.BOOTSTRAPPED:
        np.testing.assert_allclose(batched.boot_n[metric], one_by_one.boot_n[metric], rtol=1e-12)
        np.testing.assert_allclose(batched.boot_sum[metric], one_by_one.boot_sum[metric], rtol=1e-12)
    _same(batched.table(), one_by_one.table())
    _same(batched.table(tuple(SCORED_IDS[len(REGION_IDS):]), sort=False),
          one_by_one.table(tuple(SCORED_IDS[len(REGION_IDS):]), sort=False))


def _same(a, b, path="", rel=1e-9, absolute=1e-6) -> None:
    """Equal field by field; numbers to ``rel`` (relative) or ``absolute`` (for numbers the results round to
    4 decimals, a float's last bit can move the rounding by one unit)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _same(a[key], b[key], f"{path}/{key}", rel, absolute)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{k}]", rel, absolute)
    elif isinstance(a, float) and isinstance(b, float):
        # The average face is sampled in float32 (canonical.warp_batch): its mean map, which the results
        # round to 4 decimals, may move by one unit there.
        near = 1.5e-4 if "mean_attribution" in path else absolute
        assert math.isclose(a, b, rel_tol=rel, abs_tol=near), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_a_picture_waits_for_the_pictures_it_is_made_from_and_travels_drawn():
    drawn = []

    def make(value):
        drawn.append(value)
        return value * 2

    source = Later(make, 3)
    combined = Later(lambda a, b: a + b, source, 1)
    assert drawn == []
    assert combined.get() == 7 and source.get() == 6 and drawn == [3]  # each drawn once
    pending = Later(make, 5)
    copy = pickle.loads(pickle.dumps(pending))  # e.g. from a DataLoader worker: drawn before it travels
    assert copy.get() == 10 and drawn == [3, 5]


def test_a_prepared_image_brings_everything_the_batch_needs_that_needs_no_model(tutorial_like, tmp_path):
    from reportgen.faces.images import ImagePreparer
    from reportgen.faces.landmarks import LandmarkCache
    from reportgen.inputs.dataset import read_dataset
    from reportgen.inputs.preprocess import build_transform

    dataset = read_dataset(tutorial_like["images"], tutorial_like["annotations"], ["task"])
    preparer = ImagePreparer(dataset, build_transform(128), LandmarkCache(tmp_path), replicates=50)
    item = preparer.prepare(2)
    assert item.failure is None
    np.testing.assert_array_equal(item.areas, region_areas(item.labels))
    np.testing.assert_array_equal(item.control, face_control(item.landmarks))
    np.testing.assert_array_equal(item.weights, bootstrap_weights(2, 50))
    assert item.weights.dtype == np.uint8
    seen = item.seen.get()  # the picture the model saw, drawn only when asked for
    assert seen.size == (128, 128) and seen.mode == "RGB"
    assert ImagePreparer(dataset, build_transform(128), LandmarkCache(tmp_path)).prepare(2).weights is None


def test_the_model_s_picture_is_drawn_when_a_heap_keeps_the_image_and_never_otherwise():
    from PIL import Image

    from reportgen.results.patches import Examples, ImageBrowser

    state = RunState(2)
    state.browser = ImageBrowser(sample=0)  # keeps nothing: only the patches and examples decide here
    state.examples = Examples(each=1)
    drawn = []
    labels = _labels(1)[0]
    for row, values in enumerate((_maps(1)[0] + 0.1, np.zeros((SIZE, SIZE), np.float32))):
        seen = Later(lambda row=row: drawn.append(row) or Image.new("RGB", (SIZE, SIZE)))
        effects = np.zeros(len(REGION_IDS))  # (lets the empty map be scored: region ablation's case)
        scores = region_scores(values.astype(np.float64), labels, effects)
        state.add_image(row, scores, values.astype(np.float64), _faces(1)[0], labels, {}, {"image": f"{row}.png",
                        "label": None, "prediction": 1, "probability": 0.5}, None, seen)
    # The first image tops every region it has attention in; the second has none anywhere and an equally
    # confident prediction, so no heap wants it.
    assert drawn == [0]


class _Slow:
    """A preparer whose images take a little while; it notes which thread prepared each image."""

    def __init__(self, count: int, broken: int | None = None):
        self.count, self.broken, self.threads = count, broken, {}

    def __len__(self) -> int:
        return self.count

    def prepare(self, index: int) -> int:
        time.sleep(0.002)
        if index == self.broken:
            raise RuntimeError("a broken preparer")
        self.threads[index] = threading.current_thread().name
        return index


def test_in_process_batches_come_whole_and_in_order_and_a_caller_that_is_ahead_helps():
    from reportgen.faces.images import _one_batch_ahead

    slow = _Slow(50)
    batches = list(_one_batch_ahead(slow, 8))
    assert [len(batch) for batch in batches] == [8] * 6 + [2]
    assert [index for batch in batches for index in batch] == list(range(50))
    # The caller asks at once for every batch: rather than wait, it prepared some images itself.
    assert set(slow.threads.values()) == {"reportgen-prepare", threading.main_thread().name}


def test_the_prepare_thread_stays_one_batch_ahead_of_a_slow_caller_and_its_errors_reach_the_caller():
    from reportgen.faces.images import _one_batch_ahead

    slow, prepared_then = _Slow(40), []
    for _batch in _one_batch_ahead(slow, 8):
        time.sleep(0.05)  # a slow model: the thread has long finished the next batch
        prepared_then.append(len(slow.threads))
    assert all(count <= 8 * (k + 2) for k, count in enumerate(prepared_then)), prepared_then
    with pytest.raises(RuntimeError, match="a broken preparer"):
        for _ in _one_batch_ahead(_Slow(40, broken=20), 8):
            time.sleep(0.01)


def _add_one_by_one(self: RunState, batch) -> None:
    """The per-image reference of RunState.add_batch: every score, bootstrap weight and warp computed again
    from the image's own map with the per-image functions, then ``add_image``."""
    count = len(REGION_IDS)
    for k, row in enumerate(batch.rows):
        attribution = batch.maps[k].astype(np.float64)
        effects = batch.scores["effect"][k][:count]
        scores = region_scores(attribution, batch.labels[k], effects if np.isfinite(effects).any() else None)
        weights = bootstrap_weights(row, self.replicates) if self.replicates else None
        self.add_image(row, scores, attribution, batch.landmarks[k], batch.labels[k], batch.groups[k],
                       batch.infos[k], batch.true_labels[k], batch.seen[k], weights,
                       batch.partners[k] if batch.partners else None)


@pytest.mark.slow  # two whole runs per method; the quick run keeps the unit tests of the batch path above
@pytest.mark.parametrize("method", ["gradcam", "region-ablation"])
def test_a_run_on_the_batch_path_gives_the_results_of_the_per_image_path(tutorial_like, tmp_path, monkeypatch,
                                                                         method):
    monkeypatch.setattr(scores_module, "PENDING_IMAGES", 3)
    options = dict(images=tutorial_like["images"], annotations=tutorial_like["annotations"], target="task",
                   model_file=tutorial_like["model_file"], weights=tutorial_like["weights"], image_size=128,
                   layer="layer4", protected=["protected"], cache_dir=tmp_path, batch_size=4, bootstrap=200,
                   method=method, check_images=0)  # the checks' records do not pass through add_batch
    batched = reportgen.analyze(**options)
    with monkeypatch.context() as patch:
        patch.setattr(RunState, "add_batch", _add_one_by_one)
        one_by_one = reportgen.analyze(**options)
    assert batched["counts"]["scored"] == 6
    for results in (batched, one_by_one):
        for varies in ("seconds", "started", "detector_calls"):  # the second run reads the landmark cache
            results["run"].pop(varies)
        results["manifest"] = None
    _same(batched, one_by_one)
