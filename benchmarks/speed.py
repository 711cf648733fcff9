"""Images per second and peak memory of reportgen against the bare attribution, a model that costs nothing,
and a per-image loop.

    python benchmarks/speed.py [--tutorial ../shared/tutorial] [--images 1024] [--device cpu]

Builds a dataset of face images from the tutorial photos (flipped, shifted and re-toned copies, so each
file has its own content hash and the landmark cache cannot share entries), then measures on a resnet18 at
224x224 with layer4, batch 16:
  (a) bare captum LayerGradCam on pre-decoded, pre-transformed tensors: the ceiling as issue 6 defines
      it; (a+) the same with the model in the channels-last memory format, as reportgen runs it on the CPU
      (reportgen.inputs.model.use_channels_last): the ceiling of reportgen's model part;
  (b) reportgen end to end, first run (landmarks computed, cache empty);
  (c) reportgen end to end, second run (landmarks from the cache), default options: the target is
      0.85 x (a);
  (c') the same with --check-images 0 (the faithfulness and sanity checks cost a fixed 64 images);
  (n) the null model: (c) with the model replaced by one 32x32-stride conv layer (the same 7x7 map a
      resnet18's layer4 gives, for almost nothing): everything reportgen does around the model, the
      ceiling a user with a fast GPU gets. Printed with a per-step profile (wall and CPU time per image, in
      the model's thread and the prepare thread; each step's own time, without the steps it calls);
  (d) a per-image loop in the style of existing face-region tools: batch size 1, CAM per image, faces
      found as in dlib's own landmark example and the face_recognition package (HOG detector with one
      upsampling on the whole image, then the 68-point predictor), region statistics per image, no cache;
and the peak resident memory and speed of (c)-style runs for --memory-images (512 and 2048), each in a
fresh process. Ends with one table (images/s, x (a), peak memory) and a JSON line of the same numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parents[1]
MODEL = "import torch\nfrom torchvision.models import resnet18\nmodel = resnet18()\nmodel.fc = torch.nn.Linear(512, 2)\n"
# A model that costs almost nothing: one conv layer whose 7x7 output at 224 px is what resnet18's layer4
# gives, so Grad-CAM, the maps and everything after them are the same size; named layer4 for the same options.
NULL_MODEL = """import torch

class Null(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer4 = torch.nn.Conv2d(3, 2, kernel_size=32, stride=32)

    def forward(self, x):
        return self.layer4(x).mean((2, 3))

model = Null()
"""


def make_dataset(tutorial: Path, count: int, folder: Path) -> Path:
    """The annotation file for the first ``count`` images (``annotations-<count>.csv``); images are made once in
    ``folder/images`` and shared by every count (so are their cached landmarks)."""
    sources = sorted((tutorial / "images").rglob("*.jpg"))
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = ["img,task,protected"]
    for k in range(count):
        source = sources[k % len(sources)]
        variant = k // len(sources)
        name = f"{variant:03d}_{source.parent.name}_{source.name}"
        target = folder / "images" / name
        if not target.exists():
            image = Image.open(source).convert("RGB")
            if variant % 2:
                image = ImageOps.mirror(image)
            if variant:
                image = ImageEnhance.Brightness(image).enhance(1 + 0.01 * variant)
                image = ImageOps.expand(image.crop((variant % 5, 0, image.width, image.height)), (0, 0, variant % 5, 0))
            image.save(target, quality=92)
        rows.append(f"{name},{int('Caucasian' in str(source))},{k % 2}")
    annotations = folder / f"annotations-{count}.csv"
    annotations.write_text("\n".join(rows) + "\n")
    return annotations


def model_files(folder: Path, source: str = MODEL, name: str = "model") -> tuple[Path, Path]:
    import torch

    (folder / f"{name}.py").write_text(source)
    weights = folder / f"{name}.pt"
    if not weights.exists():
        namespace: dict = {}
        exec(source, namespace)
        torch.manual_seed(0)
        torch.save(namespace["model"].state_dict(), weights)
    return folder / f"{name}.py", weights


def bare_attribution(folder: Path, annotations: Path, batch_size: int, device: str,
                     channels_last: bool = False) -> float:
    """(a): captum LayerGradCam over pre-transformed tensors; images per second. (a+) with channels_last."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    from reportgen.inputs.model import load_model, load_weights
    from reportgen.inputs.preprocess import build_transform

    model = load_model(folder / "model.py")
    load_weights(model, folder / "model.pt")
    model.eval().to(device)
    transform = build_transform(224).transform
    names = [line.split(",")[0] for line in annotations.read_text().splitlines()[1:]]
    tensors = torch.stack([transform(Image.open(folder / "images" / name).convert("RGB")) for name in names])
    if channels_last:
        model.to(memory_format=torch.channels_last)
        tensors = tensors.contiguous(memory_format=torch.channels_last)
    method = LayerGradCam(model, model.layer4)
    start = time.perf_counter()
    for i in range(0, len(tensors), batch_size):
        batch = tensors[i:i + batch_size].to(device)
        maps = method.attribute(batch, target=torch.ones(len(batch), dtype=torch.long, device=device),
                                relu_attributions=True)
        LayerAttribution.interpolate(maps, (224, 224), "bilinear").cpu()
    return len(tensors) / (time.perf_counter() - start)


def end_to_end(folder: Path, annotations: Path, cache: Path, batch_size: int, device: str, workers: int | None,
               model: str = "model", **more) -> tuple[float, dict]:
    """(b)/(c)/(n): reportgen.analyze in this process; images per second. Imports happen before the clock
    starts (as for (a)): they are a one-time cost of about 2.5 s per process, not a per-image one."""
    import reportgen
    import reportgen.analysis  # noqa: F401  (reportgen.analyze imports it lazily)

    options = dict(images=folder / "images", annotations=annotations, target="task",
                   model_file=folder / f"{model}.py", weights=folder / f"{model}.pt", image_size=224,
                   layer="layer4", target_class=1, protected=["protected"], cache_dir=cache,
                   batch_size=batch_size, device=device)
    if workers is not None:
        options["workers"] = workers
    options.update(more)
    start = time.perf_counter()
    results = reportgen.analyze(**options)
    return results["counts"]["images"] / (time.perf_counter() - start), results


class StepProfile:
    """Wall-clock and CPU time of each step of one run, per thread: reportgen's functions wrapped for the run.

    Each step is charged its own time only (a step called inside another is taken out of the outer one's),
    so the steps of a thread add up to its total. CPU time is the thread's own (time.thread_time): the
    threads torch starts for one operation are not in it, so for torch steps wall time says more."""

    def __init__(self):
        self.wall: dict[tuple[str, str], float] = defaultdict(float)
        self.cpu: dict[tuple[str, str], float] = defaultdict(float)
        self._local = threading.local()
        self._restore: list = []

    @contextlib.contextmanager
    def step(self, name: str):
        stack = self._local.__dict__.setdefault("stack", [])
        thread = "model" if threading.current_thread() is threading.main_thread() else "prepare"
        now = (time.perf_counter(), time.thread_time())
        if stack:
            self._charge(stack[-1], thread, now)
        stack.append([name, *now])
        try:
            yield
        finally:
            now = (time.perf_counter(), time.thread_time())
            self._charge(stack.pop(), thread, now)
            if stack:
                stack[-1][1:] = now  # the outer step resumes now

    def _charge(self, entry: list, thread: str, now: tuple[float, float]) -> None:
        name, wall, cpu = entry
        self.wall[thread, name] += now[0] - wall
        self.cpu[thread, name] += now[1] - cpu
        entry[1:] = now

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            with self.step(name):
                return original(*args, **kwargs)

        self._restore.append((owner, attribute, original))
        setattr(owner, attribute, timed)

    def wrap_batches(self, module) -> None:
        """Time the model's thread waiting for the next prepared batch."""
        original = module.prepared_batches

        def batches(*args, **kwargs):
            iterator = iter(original(*args, **kwargs))
            while True:
                with self.step("waiting for the prepare stage"):
                    batch = next(iterator, None)
                if batch is None:
                    return
                yield batch

        self._restore.append((module, "prepared_batches", original))
        module.prepared_batches = batches

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._restore):
            setattr(owner, attribute, original)
        self._restore = []


def profiled_run(folder: Path, annotations: Path, cache: Path, batch_size: int, device: str,
                 model: str) -> tuple[float, dict, StepProfile, float]:
    """(n): a cached end-to-end run with every step timed (StepProfile); (images/s, results, profile, wall s)."""
    import reportgen.analysis as analysis
    import reportgen.faces.images as images
    import reportgen.inputs.run_inputs as run_inputs
    from reportgen.faces.canonical import CanonicalFace
    from reportgen.faces.landmarks import LandmarkCache
    from reportgen.results.scores import RunningScores
    from reportgen.results.state import RunState

    profile = StepProfile()
    for owner, attribute, name in (
            (images.ImagePreparer, "prepare", "prepare: the rest"),
            (images, "read_image", "read and decode"), (LandmarkCache, "get", "landmarks from the cache"),
            (images, "label_image", "region label image"),
            (images, "region_areas", "areas, warp points, bootstrap weights"),
            (images, "face_control", "areas, warp points, bootstrap weights"),
            (images, "bootstrap_weights", "areas, warp points, bootstrap weights"),
            (analysis.Explainer, "explain", "batch glue (stack, to device, info)"),
            (analysis, "_explain", "model + attribution"), (analysis.Explainer, "_check", "checks (not model)"),
            (analysis, "region_sums", "region sums"), (analysis, "warp_batch", "average-face warp"),
            (analysis, "batch_scores", "scores from sums"), (RunState, "add_batch", "state: group bookkeeping"),
            (RunningScores, "add_batch", "state: running sums"), (RunningScores, "_flush", "state: bootstrap sums"),
            (CanonicalFace, "add_batch", "state: average-face sums"), (RunState, "_keep", "state: picture offers"),
            (RunState, "results", "results + report pictures (once)")):
        profile.wrap(owner, attribute, name)
    profile.wrap_batches(analysis)
    # The run builds its transform from --image-size (run_inputs.build_transform): time each call of it.
    original = run_inputs.build_transform

    def preprocessing(*args, **kwargs):
        made = original(*args, **kwargs)
        made.transform = functools.partial(_timed_call, profile, made.transform)
        return made

    profile._restore.append((run_inputs, "build_transform", original))
    run_inputs.build_transform = preprocessing
    try:
        started = time.perf_counter()
        with profile.step("run: the rest"):
            speed, results = end_to_end(folder, annotations, cache, batch_size, device, None, model=model)
        seconds = time.perf_counter() - started
    finally:
        profile.restore()
    return speed, results, profile, seconds


def _timed_call(profile: StepProfile, function, *args):
    with profile.step("the model's transform"):
        return function(*args)


def print_profile(profile: StepProfile, images: int, seconds: float, workers: int) -> None:
    print(f"\n(n) where the time goes: {images} images in {seconds:.1f} s = {1000 * seconds / images:.2f} ms per image"
          " of wall time; each step's own time, ms per image")
    print(f"{'thread':<8} {'step':<40} {'wall':>7} {'cpu':>7}")
    for thread in ("model", "prepare"):
        steps = sorted(((name, wall) for (t, name), wall in profile.wall.items() if t == thread), key=lambda s: -s[1])
        for name, wall in steps:
            print(f"{thread:<8} {name:<40} {1000 * wall / images:>7.2f} {1000 * profile.cpu[thread, name] / images:>7.2f}")
        total = sum(wall for _, wall in steps)
        cpu = sum(profile.cpu[thread, name] for name, _ in steps)
        print(f"{thread:<8} {'= total':<40} {1000 * total / images:>7.2f} {1000 * cpu / images:>7.2f}")
    if workers:
        print(f"(the prepare stage ran in {workers} worker processes: not in this profile)")


def per_image_loop(folder: Path, annotations: Path, limit: int, device: str) -> float:
    """(d): one image at a time, as research face-region tools do: decode, detect, CAM, mask, score."""
    import dlib
    from captum.attr import LayerAttribution, LayerGradCam

    from reportgen.faces.landmarks import _dlib_models, _shape_to_array
    from reportgen.faces.regions import label_image
    from reportgen.inputs.model import load_model, load_weights
    from reportgen.inputs.preprocess import build_transform
    from reportgen.results.scores import region_scores

    model = load_model(folder / "model.py")
    load_weights(model, folder / "model.pt")
    model.eval().to(device)
    transform = build_transform(224).transform
    method = LayerGradCam(model, model.layer4)
    detector, predictor = _dlib_models()
    names = [line.split(",")[0] for line in annotations.read_text().splitlines()[1:]][:limit]
    start = time.perf_counter()
    for name in names:
        image = Image.open(folder / "images" / name).convert("RGB")
        pixels = np.asarray(image)
        boxes = detector(pixels, 1)  # dlib's example and face_recognition's default: upsample once
        tensor = transform(image)[None].to(device)
        cam = method.attribute(tensor, target=1, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, (224, 224), "bilinear")[0, 0].detach().cpu().numpy()
        if len(boxes):
            landmarks = _shape_to_array(predictor(pixels, max(boxes, key=dlib.rectangle.area)))
            scale = np.array([224 / image.width, 224 / image.height])
            region_scores(cam.astype(np.float64), label_image(landmarks * scale, 224, 224))
    return len(names) / (time.perf_counter() - start)


def peak_memory(folder: Path, annotations: Path, cache: Path, batch_size: int, device: str) -> tuple[float, float]:
    """(peak resident memory in MiB, images per second) of one cached end-to-end run in a fresh process
    (workers included)."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv = ['x'];"
            f"from benchmarks.speed import end_to_end; from pathlib import Path;"
            f"print('rate', end_to_end(Path({str(folder)!r}), Path({str(annotations)!r}), Path({str(cache)!r}), "
            f"{batch_size}, {device!r}, None)[0])")
    done = subprocess.run([sys.executable, "-c", f"if __name__ == '__main__':\n    exec({code!r})\n"
                           "    import resource; print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                           "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"],
                          check=True, capture_output=True, text=True)
    lines = done.stdout.splitlines()
    rate = float([line for line in lines if line.startswith("rate ")][-1].split()[1])
    peak = max(int(v) for v in [line for line in lines if line.startswith("peak ")][-1].split()[1:])
    return peak / 1024, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, default=ROOT.parent / "shared" / "tutorial")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loop-images", type=int, default=128, help="images for the slow per-image loop (d)")
    parser.add_argument("--memory-images", type=int, nargs=2, default=(512, 2048), metavar=("SMALL", "LARGE"))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reportgen-bench")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-null", action="store_true", help="only the null model (n) and its profile "
                        "(the landmark cache of --work is filled first if needed)")
    args = parser.parse_args()

    from reportgen.faces.landmarks import CACHE_VERSION

    folder = args.work
    annotations = make_dataset(args.tutorial, args.images, folder)
    model_files(folder)
    model_files(folder, NULL_MODEL, "null")
    rows: dict[str, float] = {}
    memory: dict[int, float] = {}
    warm = folder / f"cache-v{CACHE_VERSION}"  # landmarks for every run but the first (kept for --only-null)
    if not args.only_null:
        rows["(a) bare LayerGradCam, pre-decoded tensors"] = bare_attribution(folder, annotations, args.batch_size,
                                                                               args.device)
        if args.device == "cpu":
            rows["(a+) the same, channels-last model"] = bare_attribution(folder, annotations, args.batch_size,
                                                                          args.device, True)
        first_cache = folder / f"cache-{time.time_ns()}"
        rows["(b) reportgen, first run"], _ = end_to_end(folder, annotations, first_cache, args.batch_size,
                                                          args.device, None)
        if not warm.exists():
            first_cache.rename(warm)
    end_to_end(folder, annotations, warm, args.batch_size, args.device, None, model="null")  # fills a new cache
    rows["(n) null model (one conv layer), cached"], _ = end_to_end(folder, annotations, warm, args.batch_size,
                                                                     args.device, None, model="null")
    if not args.only_null:
        rows["(c) reportgen, landmarks cached"], _ = end_to_end(folder, annotations, warm, args.batch_size,
                                                                 args.device, None)
        # The faithfulness and sanity checks cost a fixed amount (64 images, 3 model passes each).
        rows["(c') the same without the checks"], _ = end_to_end(folder, annotations, warm, args.batch_size,
                                                                 args.device, None, check_images=0)
        rows["(d) per-image loop (peer-tool style)"] = per_image_loop(folder, annotations, args.loop_images,
                                                                       args.device)
        if not args.skip_memory:
            for n in args.memory_images:
                more = make_dataset(args.tutorial, n, folder)
                end_to_end(folder, more, warm, args.batch_size, args.device, None, model="null")  # cache
                memory[n], rows[f"(c) in a fresh process, {n} images"] = peak_memory(
                    folder, more, warm, args.batch_size, args.device)
    # Last, so that it runs on a warm process like (n); its wrappers cost a little, so (n) is measured without.
    _, results, profile, seconds = profiled_run(folder, annotations, warm, args.batch_size, args.device, "null")

    print_profile(profile, results["counts"]["images"], seconds, results["run"]["workers"])
    a = rows.get("(a) bare LayerGradCam, pre-decoded tensors")
    print(f"\n{args.images} images, resnet18 224x224 layer4, batch {args.batch_size}, device {args.device}, "
          f"workers {results['run']['workers']}")
    print(f"{'measure':<46} {'images/s':>9} {'x (a)':>7} {'peak MiB':>9}")
    for name, value in rows.items():
        peak = next((f"{memory[n]:>9.0f}" for n in memory if name.endswith(f", {n} images")), "")
        print(f"{name:<46} {value:>9.1f} {value / a if a else float('nan'):>7.2f} {peak}")
    if memory:
        small, large = args.memory_images
        print(f"peak memory {large} / {small} images: {memory[large] / memory[small]:.2f} (target: at most 1.2)")
    if a:
        print(f"(b) / (d) = {rows['(b) reportgen, first run'] / rows['(d) per-image loop (peer-tool style)']:.1f}x")
    print(json.dumps({**{k: round(v, 2) for k, v in rows.items()}, "peak_mib": {n: round(m) for n, m in memory.items()}}))


if __name__ == "__main__":
    main()
