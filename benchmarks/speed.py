"""Images per second and peak memory of reportgen against the bare attribution and a per-image loop.

    python benchmarks/speed.py [--tutorial ../shared/tutorial] [--images 512] [--device cpu]

Builds a dataset of N face images from the tutorial photos (flipped, shifted and re-toned copies, so
each file has its own content hash and the landmark cache cannot share entries), then measures on a
resnet18 at 224x224 with layer4:
  (a) bare captum LayerGradCam on pre-decoded, pre-transformed tensors, same batch size: the ceiling
      as the issue defines it; (a+) the same with the model in the channels-last memory format, as
      reportgen runs it on the CPU (reportgen.model.use_channels_last): the ceiling of reportgen's model part;
  (b) reportgen end to end, first run (landmarks computed, cache empty);
  (c) reportgen end to end, second run (landmarks from the cache);
  (c') the same with --check-images 0 (the faithfulness and sanity checks cost a fixed 64 images);
  (d) a per-image loop in the style of existing face-region tools: batch size 1, CAM per image, faces
      found as in dlib's own landmark example and the face_recognition package (HOG detector with one
      upsampling on the whole image, then the 68-point predictor), region statistics per image, no cache;
and the peak resident memory and speed of (c)-style runs for N and 4N images (each in a fresh process),
which shows what the checks' fixed cost (64 images) weighs in a larger run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from reportgen.landmarks import CACHE_VERSION

ROOT = Path(__file__).resolve().parents[1]
MODEL = "import torch\nfrom torchvision.models import resnet18\nmodel = resnet18()\nmodel.fc = torch.nn.Linear(512, 2)\n"


def make_dataset(tutorial: Path, count: int, folder: Path) -> Path:
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
    (folder / "annotations.csv").write_text("\n".join(rows) + "\n")
    return folder


def model_files(folder: Path) -> tuple[Path, Path]:
    import torch

    (folder / "model.py").write_text(MODEL)
    weights = folder / "weights.pt"
    if not weights.exists():
        namespace: dict = {}
        exec(MODEL, namespace)
        torch.manual_seed(0)
        torch.save(namespace["model"].state_dict(), weights)
    return folder / "model.py", weights


def bare_attribution(folder: Path, batch_size: int, device: str, channels_last: bool = False) -> float:
    """(a): captum LayerGradCam over pre-transformed tensors; images per second. (a+) with channels_last."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    from reportgen.model import load_model, load_weights
    from reportgen.preprocess import build_transform

    model = load_model(folder / "model.py")
    load_weights(model, folder / "weights.pt")
    model.eval().to(device)
    transform = build_transform(224).transform
    paths = sorted((folder / "images").glob("*.jpg"))
    tensors = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
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


def end_to_end(folder: Path, cache: Path, batch_size: int, device: str, workers: int | None,
               **more) -> tuple[float, dict]:
    """(b)/(c): reportgen.analyze in this process; images per second. Imports happen before the clock
    starts (as for (a)): they are a one-time cost of about 2.5 s per process, not a per-image one."""
    import reportgen
    import reportgen.analysis  # noqa: F401  (reportgen.analyze imports it lazily)

    options = dict(images=folder / "images", annotations=folder / "annotations.csv", target="task",
                   model_file=folder / "model.py", weights=folder / "weights.pt", image_size=224,
                   layer="layer4", target_class=1, protected=["protected"], cache_dir=cache,
                   batch_size=batch_size, device=device)
    if workers is not None:
        options["workers"] = workers
    options.update(more)
    start = time.perf_counter()
    results = reportgen.analyze(**options)
    return results["counts"]["images"] / (time.perf_counter() - start), results


def per_image_loop(folder: Path, limit: int, device: str) -> float:
    """(d): one image at a time, as research face-region tools do: decode, detect, CAM, mask, score."""
    import dlib
    from captum.attr import LayerAttribution, LayerGradCam

    from reportgen.landmarks import _dlib_models, _shape_to_array
    from reportgen.model import load_model, load_weights
    from reportgen.preprocess import build_transform
    from reportgen.regions import label_image
    from reportgen.scores import region_scores

    model = load_model(folder / "model.py")
    load_weights(model, folder / "weights.pt")
    model.eval().to(device)
    transform = build_transform(224).transform
    method = LayerGradCam(model, model.layer4)
    detector, predictor = _dlib_models()
    paths = sorted((folder / "images").glob("*.jpg"))[:limit]
    start = time.perf_counter()
    for path in paths:
        image = Image.open(path).convert("RGB")
        pixels = np.asarray(image)
        boxes = detector(pixels, 1)  # dlib's example and face_recognition's default: upsample once
        tensor = transform(image)[None].to(device)
        cam = method.attribute(tensor, target=1, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, (224, 224), "bilinear")[0, 0].detach().cpu().numpy()
        if len(boxes):
            landmarks = _shape_to_array(predictor(pixels, max(boxes, key=dlib.rectangle.area)))
            scale = np.array([224 / image.width, 224 / image.height])
            region_scores(cam.astype(np.float64), label_image(landmarks * scale, 224, 224))
    return len(paths) / (time.perf_counter() - start)


def peak_memory(folder: Path, cache: Path, batch_size: int, device: str) -> tuple[float, float]:
    """(peak resident memory in MiB, images per second) of one cached end-to-end run in a fresh process
    (workers included)."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv = ['x'];"
            f"from benchmarks.speed import end_to_end; from pathlib import Path;"
            f"print('rate', end_to_end(Path({str(folder)!r}), Path({str(cache)!r}), {batch_size}, {device!r}, None)[0])")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", f"if __name__ == '__main__':\n    exec({code!r})"], check=True,
                          capture_output=True, text=True)
    rate = float([line for line in done.stdout.splitlines() if line.startswith("rate ")][-1].split()[1])
    return max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tutorial", type=Path, default=ROOT.parent / "shared" / "tutorial")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loop-images", type=int, default=128, help="images for the slow per-image loop (d)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reportgen-bench")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    small = make_dataset(args.tutorial, args.images, args.work / f"n{args.images}")
    model_files(small)
    cache = args.work / f"cache-{time.time_ns()}"
    rows = {}
    rows["(a) bare LayerGradCam, pre-decoded tensors"] = bare_attribution(small, args.batch_size, args.device)
    if args.device == "cpu":
        rows["(a+) the same, channels-last model"] = bare_attribution(small, args.batch_size, args.device, True)
    rows["(b) reportgen end to end, first run"], first = end_to_end(small, cache, args.batch_size, args.device, None)
    rows["(c) reportgen end to end, landmarks cached"], _ = end_to_end(small, cache, args.batch_size, args.device, None)
    # The faithfulness and sanity checks cost a fixed amount (64 images), which is large at 512 images.
    rows["(c') the same without the checks"], _ = end_to_end(small, cache, args.batch_size, args.device, None,
                                                             check_images=0)
    rows["(d) per-image loop (peer-tool style)"] = per_image_loop(small, args.loop_images, args.device)
    a = rows["(a) bare LayerGradCam, pre-decoded tensors"]
    print(f"\n{args.images} images, resnet18 224x224 layer4, batch {args.batch_size}, device {args.device}, "
          f"workers {first['run']['workers']}")
    print(f"{'measure':<46} {'images/s':>9} {'x (a)':>7}")
    for name, speed in rows.items():
        print(f"{name:<46} {speed:>9.1f} {speed / a:>7.2f}")
    b, d = rows["(b) reportgen end to end, first run"], rows["(d) per-image loop (peer-tool style)"]
    print(f"(b) / (d) = {b / d:.1f}x")
    if not args.skip_memory:
        big = make_dataset(args.tutorial, 4 * args.images, args.work / f"n{4 * args.images}")
        model_files(big)
        memory, speed = {}, {}
        for folder, n in ((small, args.images), (big, 4 * args.images)):
            warm = args.work / f"cache-mem-{n}-v{CACHE_VERSION}"
            end_to_end(folder, warm, args.batch_size, args.device, None) if not warm.exists() else None
            memory[n], speed[n] = peak_memory(folder, warm, args.batch_size, args.device)
        print("\npeak resident memory (MiB, largest process): " +
              ", ".join(f"{n} images: {m:.0f}" for n, m in memory.items()) +
              f"; ratio {memory[4 * args.images] / memory[args.images]:.2f}")
        print("(c) in a fresh process: " + ", ".join(
            f"{n} images: {v:.1f} images/s = {v / a:.2f} x (a)" for n, v in speed.items()))
    print(json.dumps({k: round(v, 2) for k, v in rows.items()}))


if __name__ == "__main__":
    main()
