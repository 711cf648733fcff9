"""Run the shards of a run on a Dask cluster and merge them: ``reportgen run ... --dask ADDRESS|local``.

Each shard is the run by hand of docs/scaling.md (``--shard I/N``): a Dask worker runs
``analysis.run_analysis`` on every N-th image and saves its part in a folder beside the report
(``report.parts/shard-I-of-N.partial.json``); this process adds the parts up (``state.merge_partials``),
which gives the results of a single run. The parts folder is also what makes a run hard to lose:
  - a worker lost mid-shard: the scheduler runs the shard again on another worker (a worker that died
    counts against Dask's ``allowed-failures``, a shard that raised against ``RETRIES``), and the new
    try continues from the shard's own checkpoint, saved every ``checkpoint_seconds``;
  - a run that is interrupted (Ctrl-C, a killed client) and started again with the same command reuses
    the finished parts and computes only the missing shards (same fingerprint: same inputs and options).
Workers read the annotations, images, model file, weights and transform from the same paths as this
process, so a cluster of several machines needs a shared file system. Dask is imported only here, and
only when a run asks for it: ``import reportgen`` and ``reportgen --help`` stay without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .inputs.config import PATH_OPTIONS, RunConfig

if TYPE_CHECKING:  # the results modules are imported when needed
    from .results import schema
    from .results.state import RunContext, RunState

LOCAL = "local"  # --dask local: a LocalCluster on this machine, one worker process per core
# Default shard count: a few shards per worker thread, so a lost worker costs little and a slow one holds up
# little; but a shard's set-up (loading the model, measuring its layers, the sanity check's randomised copy,
# saving its part) costs 1-2 CPU seconds, the work of 10 tutorial images (resnet18) or 35 of the demo's, so
# no shard gets fewer images than this.
SHARDS_PER_WORKER = 2
MIN_IMAGES_PER_SHARD = 32
RETRIES = 2  # a shard that raised (a hiccup of a shared disk, say) is tried again this often
CONNECT_SECONDS = 10  # to reach a scheduler given by address
WORKERS_SECONDS = 60  # for a scheduler without workers to get one
PART_NAME = re.compile(r"shard-(\d+)-of-(\d+)\.partial\.json")

Say = Callable[[str], None]
Progress = Callable[[int, int], None]


@dataclass
class DaskRun:
    """What ran on the cluster; recorded as results["run"]["dask"] (docs/results.md)."""

    scheduler: str  # "local" or the address given
    workers: int  # worker processes when the shards were sent
    threads: int  # their threads: how many shards run at once
    shards: int
    reused: list[int] = field(default_factory=list)  # shards whose finished part an earlier run left
    resumed: list[int] = field(default_factory=list)  # shards that continued from their own checkpoint
    seconds: float = 0.0  # wall-clock, from connecting to the merged results

    def to_dict(self) -> schema.DaskRun:
        return {"scheduler": self.scheduler, "workers": self.workers, "threads": self.threads, "shards": self.shards,
                "reused": list(self.reused), "resumed": list(self.resumed), "seconds": round(self.seconds, 2)}


def parts_folder(config: RunConfig) -> Path:
    """Where the shards' parts go: beside the report, ``report.html`` -> ``report.parts/``."""
    out = Path(config.out)
    return out.with_name(out.stem + ".parts")


def part_path(folder: Path, part: int, parts: int) -> Path:
    return Path(folder) / f"shard-{part}-of-{parts}.partial.json"


def shard_rows(part: int, parts: int, total: int) -> range:
    """The dataset rows of shard ``part`` of ``parts`` (1-based), as ``--shard part/parts`` takes them."""
    return range(part - 1, total, parts)


def default_shards(threads: int, images: int) -> int:
    """SHARDS_PER_WORKER per worker thread, but no shard under MIN_IMAGES_PER_SHARD images (and at least one)."""
    return max(1, min(SHARDS_PER_WORKER * threads, images // MIN_IMAGES_PER_SHARD))


def remove_parts(config: RunConfig) -> None:
    """Delete the parts folder's part files (and the temporary files of a killed save), then the folder
    if nothing else is in it. Called once the merged report is safe."""
    folder = parts_folder(config)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if PART_NAME.fullmatch(path.name) or (path.name.startswith(".shard-") and path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # the user keeps something of their own there


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise InputError("--dask needs Dask's distributed package: install reportgen[dask] "
                         "(pip install 'reportgen[dask]')") from None
    return distributed


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (a container's or a job's share)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def local_cluster(workers: int):
    """A distributed.LocalCluster of ``workers`` worker processes with one thread each (Dask's workers set
    OMP_NUM_THREADS=1, so a shard's model runs on one core), set up for reportgen's shards."""
    import dask

    distributed = _import_distributed()
    # Dask's nannies start their workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns off glibc's
    # sliding mmap threshold: every large tensor is then mapped and unmapped afresh. On the tutorial's
    # shards that cost 30% more CPU (2.3 million page faults per worker instead of 0.6 million);
    # None takes the variable out (docs/scaling.md says how to do the same for workers started by hand).
    # Dask's own log lines (a worker restarted, a slow shutdown, a worker outliving a killed client)
    # would break the console summary: what matters comes back as exceptions and shard outcomes. The
    # dashboard (if bokeh is installed) takes a free port instead of warning that 8787 is taken.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
            distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster:
        yield cluster


@contextmanager
def connect(address: str):
    """A distributed.Client: to the scheduler at ``address``, or to a new local_cluster with one worker
    process per core for "local". Closes what it started."""
    distributed = _import_distributed()
    if address == LOCAL:
        with local_cluster(_cores()) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(address, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(f"--dask {address}: no Dask scheduler answers there ({error}); start one with "
                         "'dask scheduler', or use --dask local") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_SECONDS)
        except TimeoutError:
            raise InputError(f"--dask {address}: the scheduler has no workers after {WORKERS_SECONDS} s; "
                             f"start some with 'dask worker {address} --nthreads 1'") from None
        yield client


def compute_shard(config: RunConfig, part: int, parts: int, path: str, topic: str) -> dict:
    """Runs on a Dask worker: shard ``part`` of ``parts``, saved to ``path`` (continuing from the
    checkpoint there, if an earlier try left one). Returns a small summary, or {"error": message} for bad
    input: an error the user must fix is not retried."""
    from distributed import get_worker

    from .analysis import run_analysis
    from .results.state import load_partial

    worker = get_worker()
    # Workers are daemon processes, which may not start processes of their own: images are prepared in
    # a thread of the worker, one batch ahead of the model.
    config = dataclasses.replace(config, shard=f"{part}/{parts}", partial=Path(path), workers=0, resume=True)
    resumed = 0
    if Path(path).exists():
        try:
            state, _ = load_partial(Path(path))
            resumed = int(state.done[shard_rows(part, parts, state.total)].sum())
        except InputError:
            pass  # run_analysis starts this shard over

    def progress(done: int, total: int) -> None:
        worker.log_event(topic, {"part": part, "done": done})

    try:
        state, context = run_analysis(config, progress)
    except InputError as error:
        return {"part": part, "worker": worker.address, "error": str(error)}
    return {"part": part, "worker": worker.address, "fingerprint": context["fingerprint"],
            "images": len(shard_rows(part, parts, state.total)), "resumed": resumed, "seconds": state.seconds}


def _absolute(config: RunConfig) -> RunConfig:
    """The config with absolute paths: a worker's working folder is not this process's."""
    absolute: dict[str, Any] = {name: Path(os.path.abspath(getattr(config, name)))
                                for name in PATH_OPTIONS if getattr(config, name) is not None}
    return dataclasses.replace(config, **absolute)


def _check(config: RunConfig) -> None:
    if config.shard:
        raise InputError("--shard and --dask: --dask makes the shards itself (set their number with --shards N)")
    if config.partial:
        raise InputError("--partial and --dask: the parts of a Dask run go to a folder beside --out "
                         f"({parts_folder(config)})")
    if config.workers:
        raise InputError("--workers and --dask: each Dask worker is one process; start more Dask workers instead")
    if config.shards is not None and config.shards < 1:
        raise InputError(f"--shards {config.shards}: give 1 or more")


def _earlier_parts(folder: Path, fingerprint: str, shards: int | None,
                   say: Say) -> tuple[int | None, dict[int, RunState]]:
    """What an interrupted run left in the parts folder: (its shard count, {part: RunState}) for the parts
    made with the same inputs and options (and ``shards``, when given). Other parts are deleted: they can
    never be merged into this run, and would only confuse a merge by hand."""
    from .results.state import load_partial

    found: dict[int, dict[int, RunState]] = {}  # parts -> {part: state}
    stale = []
    for path in sorted(folder.glob("shard-*-of-*.partial.json")) if folder.is_dir() else []:
        match = PART_NAME.fullmatch(path.name)
        if not match:
            continue
        part, parts = int(match[1]), int(match[2])
        try:
            state, context = load_partial(path)
        except InputError:
            stale.append(path)
            continue
        if context.get("fingerprint") != fingerprint or (shards and parts != shards) or not 1 <= part <= parts:
            stale.append(path)
            continue
        found.setdefault(parts, {})[part] = state
    # Parts of one run share one shard count; if two counts are there, keep the one that did more.
    best = max(found, key=lambda n: sum(int(s.done.sum()) for s in found[n].values()), default=None)
    for parts, states in found.items():
        if parts != best:
            stale += [part_path(folder, part, parts) for part in states]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        say(f"dask: removed {len(stale)} part(s) of an earlier run with other inputs, options or shards "
            f"from {folder}")
    return best, found[best] if best is not None else {}


def run_on_dask(config: RunConfig, progress: Progress | None = None, say: Say | None = None) -> schema.ResultsDict:
    """Run ``config`` as shards on the Dask cluster ``config.dask`` and return the merged results dict
    (the same as ``analysis.analyze`` gives, plus results["run"]["dask"]).

    The parts stay in ``parts_folder(config)`` until ``remove_parts`` (call it once the report is
    written), so that an interrupted run started again reuses them. ``progress(done, total)`` counts
    images over all shards; ``say`` gets one-line console messages.
    """
    started = time.time()
    _check(config)
    address = config.dask
    if not address:
        raise InputError("--dask: give a Dask scheduler's address, or local")
    from .analysis import run_fingerprint
    from .inputs.run_inputs import resolve_inputs
    from .results.manifest import build_manifest

    say = say or (lambda text: None)
    config = _absolute(config)
    # The inputs are loaded and checked here once, as each shard will: bad input (a broken annotation file,
    # weights that do not fit) is reported before a cluster starts, and the run's fingerprint comes from the
    # same manifest entries as the shards' (the model's parameter digest among them). The model's own
    # checks (--layer, --target-class) come back from the first shard.
    inputs = resolve_inputs(config)
    total = len(inputs.dataset)
    fingerprint = run_fingerprint(config, build_manifest(config, inputs=inputs.manifest)["inputs"])
    del inputs  # the model need not stay in this process's memory while the workers run
    folder = parts_folder(config)
    if not config.resume:
        remove_parts(config)
    earlier_count, earlier = _earlier_parts(folder, fingerprint, config.shards, say)

    with connect(address) as client:
        slots = client.nthreads()
        workers, threads = len(slots), sum(slots.values())
        parts = config.shards or earlier_count or default_shards(threads, total)
        parts = min(parts, total)  # a shard with no image would only cost its set-up
        finished = sorted(part for part, state in earlier.items()
                          if part <= parts and state.done[shard_rows(part, parts, total)].all())
        todo = [part for part in range(1, parts + 1) if part not in finished]
        run = DaskRun(address, workers, threads, parts, reused=finished)
        where = "local cluster" if address == LOCAL else f"scheduler {address}"
        say(f"dask: {where}, {workers} worker(s) with {threads} thread(s); {parts} shard(s) of about "
            f"{-(-total // parts)} images, parts in {folder}")
        if finished:
            say(f"dask: reusing {len(finished)} finished part(s) of an earlier run (shards "
                f"{', '.join(map(str, finished))}); computing {len(todo)}")
        folder.mkdir(parents=True, exist_ok=True)
        # Images done per shard. Every shard has its key from the start: the event handler below runs in the
        # client's event-loop thread and only changes values, never the dict's size, while _wait sums them.
        done_images = {part: len(shard_rows(part, parts, total)) if part in finished else 0
                       for part in range(1, parts + 1)}
        completed = set(finished)
        topic = f"reportgen-progress-{uuid.uuid4().hex[:12]}"

        def on_progress(event) -> None:
            message = event[1]
            if message.get("part") in done_images and message["part"] not in completed:  # not a late one
                done_images[message["part"]] = message["done"]

        client.subscribe_topic(topic, on_progress)
        futures = {client.submit(compute_shard, config, part, parts, str(part_path(folder, part, parts)), topic,
                                 key=f"reportgen-shard-{part}-of-{parts}-{topic[-12:]}", retries=RETRIES,
                                 pure=False): part for part in todo}
        try:
            _wait(futures, run, fingerprint, total, done_images, completed, progress, say, address == LOCAL)
        except KeyboardInterrupt:
            say(f"dask: interrupted; the finished parts stay in {folder}: run the same command again to "
                "continue from them")
            raise
        finally:
            try:
                client.unsubscribe_topic(topic)
            except Exception:  # the connection may be gone; closing the client below is all that is left
                pass
    results = _merge([part_path(folder, part, parts) for part in range(1, parts + 1)], config, fingerprint)
    run.seconds = time.time() - started
    results["run"]["dask"] = run.to_dict()
    return results


def _merge(paths: list[Path], config: RunConfig, fingerprint: str) -> schema.ResultsDict:
    """The parts added up and finished into results, as ``state.merge_partials`` does, but described as the
    whole run: its options (not shard 1's, ``shard = "1/4"``) and this machine's folders, which the shared
    results leave out (privacy.py; the workers' may differ)."""
    from .results.privacy import machine_folders
    from .results.state import load_partial

    def load(path: Path) -> tuple[RunState, RunContext]:
        part, part_context = load_partial(path)
        if part_context.get("fingerprint") != fingerprint:
            raise InputError(f"{path}: made with other inputs or options than this run; run again with --no-resume")
        return part, part_context

    state, context = load(paths[0])
    for path in paths[1:]:
        state.merge(load(path)[0])
    context["config"] = config.to_dict()
    manifest = context.get("manifest")
    if manifest:
        manifest["options"] = config.to_dict()
    context["machine"] = machine_folders()
    return state.results(context)


def _wait(futures: dict, run: DaskRun, fingerprint: str, total: int, done_images: dict, completed: set,
          progress: Progress | None, say: Say, local: bool) -> None:
    """Collect the shards as they finish. The first bad input is raised, and whatever stops the wait
    (bad input, Ctrl-C) cancels the shards not yet finished."""
    remaining = dict(futures)
    try:
        while remaining:
            for future in [f for f in remaining if f.done()]:
                part = remaining.pop(future)
                outcome = _outcome(future, part, run, fingerprint, local)
                if outcome["resumed"]:
                    run.resumed.append(part)
                    say(f"dask: shard {part}/{run.shards} continued from its checkpoint "
                        f"({outcome['resumed']} of {outcome['images']} images were done)")
                completed.add(part)
                done_images[part] = outcome["images"]
            if progress:
                progress(min(total, sum(done_images.values())), total)
            if remaining:
                time.sleep(0.2)
    except BaseException:
        for future in remaining:
            future.cancel()
        raise
    run.resumed.sort()


def _outcome(future, part: int, run: DaskRun, fingerprint: str, local: bool) -> dict:
    """A finished shard's summary (compute_shard); its bad input, or a worker that saw other files, as
    InputError."""
    from distributed import KilledWorker

    try:
        outcome = future.result()
    except KilledWorker:
        raise RuntimeError(f"shard {part}/{run.shards} took down its worker every time it ran (out of memory? "
                           "see the Dask workers' logs); the finished parts are kept: run the same command "
                           "again to continue") from None
    if "error" in outcome:
        message = outcome["error"]
        if not local and "not found" in message:
            message += " (Dask workers read the inputs from the same paths as this machine: is the file system shared?)"
        raise InputError(f"shard {part}/{run.shards} on Dask worker {outcome['worker']}: {message}")
    if outcome["fingerprint"] != fingerprint:
        raise InputError(f"shard {part}/{run.shards} on Dask worker {outcome['worker']} saw another run than this "
                         "machine (other files at the same paths, or another reportgen version): the workers must "
                         "see the same files at the same paths, e.g. on a shared file system, and run the same "
                         "reportgen")
    return outcome
