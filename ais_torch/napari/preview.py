"""Live preview without Qt: one slice through a model, cached, newest request wins.

:class:`SlicePredictor` runs the segmentation engine (the same ``plan``/``run_volume`` that
``segment_volume`` uses, so preprocessing, rescaling and TTA match a batch run exactly) on only
the slices one output slice needs, and keeps the results per ``(z, tta)``.
:class:`NewestWins` keeps at most one computation in flight: requests made while it runs replace
each other, and a result that is no longer wanted is not shown (it is still cached).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.segmentation.api import (
    ModelSpec,
    PostProcessFn,
    Segmenter,
    make_postprocess,
    named_interactions,
    uses_global_mad,
)
from ais_torch.segmentation.engine import EngineOptions, plan, run_volume
from ais_torch.segmentation.normalise import global_mad_stats
from ais_torch.segmentation.sinks import MemorySink

if TYPE_CHECKING:
    from ais_torch.formats.mrc import Volume
    from ais_torch.formats.scnm import ModelMetadata

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
CACHE_SLICES = 64
"""Slices kept per predictor (a 1024² float32 slice is 4 MB)."""
INTERACTION_HALO = 2
"""Slices either side of the displayed one that the preview's interactions see (see
:class:`InteractionPreview`)."""


class SlicePredictor:
    """One model over one volume, a slice at a time → float probabilities ``(y, x)``."""

    def __init__(
        self,
        volume: Volume,
        model: ModelSpec,
        *,
        device: str = "auto",
        cache_slices: int = CACHE_SLICES,
    ) -> None:
        if volume.data.ndim != 3:
            raise AisInputError(f"{volume.path}: not a 3D volume (shape {volume.shape})")
        self.volume = volume
        self._model = model
        self._device = device
        self._segmenters: dict[int, Segmenter] = {}
        self._stats: tuple[float, float] | None = None
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_slices = int(cache_slices)
        self._lock = threading.Lock()  # one network call at a time per model
        self.segmenter(1)  # load now: a bad model fails here, not on the first slice

    def segmenter(self, tta: int) -> Segmenter:
        """The model on its backend for ``tta`` orientations (built once each)."""
        if tta not in self._segmenters:
            model = self._model
            if self._segmenters:  # reuse the loaded network rather than reading the file again
                model = next(iter(self._segmenters.values())).models[0]
            self._segmenters[tta] = Segmenter.build(
                model,
                options=EngineOptions(dtype="float32"),
                tta=tta,
                device=self._device,
                postprocess=None,
            )
        return self._segmenters[tta]

    @property
    def title(self) -> str:
        return self.segmenter(1).titles[0]

    @property
    def metadata(self) -> ModelMetadata:
        return self.segmenter(1).models[0].metadata

    def cached(self, z: int, tta: int = 1) -> np.ndarray | None:
        return self._cache.get((int(z), int(tta)))

    def predict(self, z: int, tta: int = 1) -> np.ndarray:
        """Probabilities of slice ``z`` (float32, the tomogram's ``(y, x)``), cached."""
        key = (int(z), int(tta))
        n_z = self.volume.shape[0]
        if not 0 <= key[0] < n_z:
            raise AisInputError(f"slice z={z} is outside the tomogram (0..{n_z - 1})")
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            prob = self._run(*key)
            self._cache[key] = prob
            while len(self._cache) > self._cache_slices:
                self._cache.popitem(last=False)
            return prob

    def _run(self, z: int, tta: int) -> np.ndarray:
        segmenter = self.segmenter(tta)
        model = segmenter.models[0]
        data = self.volume.data
        n_z = int(data.shape[0])
        half = model.depth // 2
        lo, hi = max(0, z - half), min(n_z, z + half + 1)
        sub = data[lo:hi]  # the engine clamps at the ends exactly where the volume ends
        stats = None
        if uses_global_mad(model.metadata):
            if self._stats is None:
                self._stats = global_mad_stats(data)
            stats = self._stats
        options = EngineOptions(
            **{**vars(segmenter.options), "z_range": (z - lo, z - lo + 1), "slab": 1}
        )
        run = plan(
            model,
            segmenter.backends[0],
            (int(sub.shape[0]), int(data.shape[1]), int(data.shape[2])),
            float(self.volume.voxel_size_A),
            options,
            stats=stats,
        )
        sink = MemorySink((int(sub.shape[0]), int(data.shape[1]), int(data.shape[2])), np.float32)
        run_volume(sub, [run], [sink], options, source=str(self.volume.path or "volume"))
        return sink.array[z - lo]


def interaction_sets() -> list[str]:
    """The named rule sets of ``conf/segment/interactions/`` (as ``interactions=<name>``)."""
    from ais_torch.config import config_dir

    return sorted(p.stem for p in (config_dir() / "segment" / "interactions").glob("*.yaml"))


class InteractionPreview:
    """Several models' previews of one slice through the batch's post-processing step.

    The hook is :func:`~ais_torch.segmentation.api.make_postprocess` of the named set and the
    models' metadata — what ``ais-torch segment interactions=<name>`` applies — run on the
    predictions of the slices ``z - halo .. z + halo`` (each model's cached slice previews),
    and the displayed slice is kept. Competition and 2d rules without ``min_size_nm3`` are per
    slice, so there the preview is exactly the batch's; a 3d rule's sphere and the
    ``min_size_nm3`` pieces see only those ``2·halo + 1`` slices (a batch sees the whole
    tomogram), so near the edge of a radius or a small piece the preview can differ.
    """

    def __init__(
        self,
        predictors: dict[str, SlicePredictor],
        interactions: str,
        *,
        halo: int = INTERACTION_HALO,
        postprocess: PostProcessFn | None = None,
    ) -> None:
        if not predictors:
            raise AisInputError("interactions need at least one loaded model")
        self.predictors = dict(predictors)
        self.name = interactions
        self.halo = max(0, int(halo))
        loaded = [p.segmenter(1).models[0] for p in self.predictors.values()]
        self.hook = postprocess or make_postprocess(
            "auto", named_interactions(interactions), loaded, (), False
        )
        self._cache: OrderedDict[tuple[int, int], dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def z_range(self, z: int) -> tuple[int, int]:
        n_z = next(iter(self.predictors.values())).volume.shape[0]
        return max(0, int(z) - self.halo), min(n_z, int(z) + self.halo + 1)

    def predict(self, z: int, tta: int = 1) -> dict[str, np.ndarray]:
        """``{title: probabilities of slice z}`` after competition and the rules, cached."""
        key = (int(z), int(tta))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        lo, hi = self.z_range(z)
        stacks = {
            title: np.stack([p.predict(k, tta) for k in range(lo, hi)])
            for title, p in self.predictors.items()
        }
        if self.hook is not None:
            voxel = float(next(iter(self.predictors.values())).volume.voxel_size_A)
            stacks = dict(self.hook(stacks, voxel))
        result = {
            t: np.ascontiguousarray(a[int(z) - lo], dtype=np.float32) for t, a in stacks.items()
        }
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > CACHE_SLICES:
                self._cache.popitem(last=False)
        return result


class NewestWins(Generic[K, V]):
    """At most one job in flight; the newest request is the next one run, older ones are dropped.

    ``run_async(job, on_done, on_error)`` starts ``job()`` somewhere else and later calls
    ``on_done(value)`` or ``on_error(exception)``; the napari widget passes a ``thread_worker``
    whose signals arrive on the GUI thread, the default uses a plain thread. ``deliver(key,
    value)`` is called only for the key that is still wanted when its job finishes.
    """

    def __init__(
        self,
        compute: Callable[[K], V],
        deliver: Callable[[K, V], None],
        *,
        on_error: Callable[[K, BaseException], None] | None = None,
        run_async: Callable[..., None] | None = None,
    ) -> None:
        self.compute = compute
        self.deliver = deliver
        self.on_error = on_error
        self.run_async = run_async or _thread_async
        self.wanted: K | None = None
        self.running: K | None = None
        self.computed: list[K] = []
        """Keys whose job ran (for tests and the benchmark)."""
        self._lock = threading.RLock()

    def request(self, key: K) -> None:
        with self._lock:
            self.wanted = key
            if self.running is None:
                self._start(key)

    @property
    def busy(self) -> bool:
        return self.running is not None

    def _start(self, key: K) -> None:
        self.running = key

        def job() -> V:
            return self.compute(key)

        self.run_async(job, lambda value: self._done(key, value), lambda err: self._fail(key, err))

    def _done(self, key: K, value: V) -> None:
        with self._lock:
            self.computed.append(key)
            self.running = None
            if key == self.wanted:
                self.deliver(key, value)
            elif self.wanted is not None:
                self._start(self.wanted)

    def _fail(self, key: K, err: BaseException) -> None:
        with self._lock:
            self.running = None
            if self.on_error is not None and key == self.wanted:
                self.on_error(key, err)
            if self.wanted is not None and key != self.wanted:
                self._start(self.wanted)


def _thread_async(
    job: Callable[[], V], on_done: Callable[[V], None], on_error: Callable[[BaseException], None]
) -> None:
    def target() -> None:
        try:
            value = job()
        except BaseException as err:
            on_error(err)
            return
        on_done(value)

    threading.Thread(target=target, name="ais-preview", daemon=True).start()


def threshold_mask(prob: np.ndarray, threshold: float) -> np.ndarray:
    """The preview thresholded as labels: 1 = feature, 0 = not (what "Copy to labels" writes)."""
    return (np.asarray(prob) >= float(threshold)).astype(np.uint8)
