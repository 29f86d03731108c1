"""The Ais dock widget: annotate → train → preview → correct → segment → pick, in one panel.

Every action calls the library (:mod:`.annotations`, :mod:`.training`, :mod:`.preview`, the
segmentation batch and :func:`~ais_torch.picking.settings.pick_array`); long ones run in
napari workers so the viewer stays responsive. An error becomes one napari notification: the
viewer keeps running and nothing half-written is left (every output is written atomically).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)
from superqt.utils import ensure_main_thread

from ais_torch.errors import AisError, AisInputError
from ais_torch.formats.mrc import Volume, read_volume, write_volume
from ais_torch.formats.naming import file_safe, split_name
from ais_torch.napari import io
from ais_torch.napari.annotations import (
    Annotated,
    TrainSettings,
    save_annotations,
    summarise,
    train_command,
    train_overrides,
)
from ais_torch.napari.preview import (
    InteractionPreview,
    NewestWins,
    SlicePredictor,
    interaction_sets,
    threshold_mask,
)

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

    from ais_torch.commands.train import TrainResult
    from ais_torch.napari.training import Progress

F = TypeVar("F", bound=Callable[..., Any])
NO_INTERACTIONS = "off"
"""The interactions choice that runs each model on its own (no competition, no rules)."""
DEFAULT_THRESHOLD = 0.5
SPARK = "▁▂▃▄▅▆▇█"
FEATURE_COLOURS = [
    (0.26, 0.84, 0.64),
    (1.0, 0.55, 0.1),
    (0.35, 0.55, 1.0),
    (0.95, 0.3, 0.6),
    (0.9, 0.85, 0.2),
]


def notify_error(err: BaseException) -> None:
    """One napari notification for an error (ours are one line naming the file and the fix)."""
    from napari.utils.notifications import show_error

    text = str(err) if isinstance(err, AisError) else f"{type(err).__name__}: {err}"
    show_error(text)


def safe(method: F) -> F:
    """A button's handler: errors become a notification, never a crash of the viewer."""

    @functools.wraps(method)
    def wrapper(self: AisWidget, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as err:
            self.status.value = f"error: {err}"
            notify_error(err)
            return None

    return wrapper  # type: ignore[return-value]


def arch_choices() -> list[str]:
    """Presets with a ``conf/arch`` file (as ``ais-torch train arch=...``) plus other installed
    architectures (trained as ``arch=plugin arch.name=...``)."""
    from ais_torch import archs
    from ais_torch.config import config_dir

    files = sorted(
        p.stem for p in (config_dir() / "arch").glob("*.yaml") if p.stem not in ("base", "plugin")
    )
    try:
        extra = [n for n in archs.available() if n not in files]
    except Exception:  # a broken third-party plugin must not stop the widget
        extra = []
    return files + extra


def spark(values: list[float], width: int = 40) -> str:
    """A loss curve in one line of text."""
    vals = [v for v in values[-width:] if np.isfinite(v)]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    return "".join(SPARK[int((v - lo) / span * (len(SPARK) - 1))] for v in vals)


class AisWidget(Container):
    """The Ais panel (docked by ``napari`` → Plugins → Ais, or ``ais-torch gui TOMO.mrc``)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.predictors: dict[str, SlicePredictor] = {}
        self.models: dict[str, Path] = {}
        self.queues: dict[str, NewestWins[tuple[int, int], np.ndarray]] = {}
        self.joint: InteractionPreview | None = None
        self.joint_queue: NewestWins[tuple[int, int], dict[str, np.ndarray]] | None = None
        self.thresholds: dict[str, float] = {}
        self.losses: list[float] = []
        self.cancel_event = threading.Event()
        self.last_model: Path | None = None
        self.last_command = ""
        self.last_segmentation: Path | None = None
        self.train_log = ""

        # annotate
        self.tomogram = ComboBox(label="tomogram", choices=self._image_layers)
        self.feature = LineEdit(label="feature", value="Membrane")
        self.add_feature_button = PushButton(text="Add feature")
        self.box_size = SpinBox(label="box size (px)", value=64, min=8, max=1024, step=8)
        self.apix = FloatSpinBox(label="pixel size (Å, 0 = tomogram's)", value=0.0, max=1000)
        self.counts = Label(label="annotated", value="")
        self.out_folder = LineEdit(label="output folder", value="")
        self.save_button = PushButton(text="Save annotations")
        # train
        self.arch = ComboBox(label="architecture", choices=arch_choices(), value="unet_s")
        self.epochs = SpinBox(label="epochs", value=10, min=1, max=10000)
        self.batch_size = SpinBox(label="batch size", value=16, min=1, max=1024)
        self.train_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, max=1)
        self.loss = Label(label="loss", value="")
        # preview and correct
        self.model = ComboBox(label="model", choices=self._model_titles)
        self.model_path = LineEdit(label="model file", value="")
        self.load_button = PushButton(text="Load model")
        self.live = CheckBox(text="live preview", value=True)
        self.threshold = FloatSlider(
            label="threshold", value=DEFAULT_THRESHOLD, min=0.0, max=1.0, step=0.01
        )
        self.interactions = ComboBox(
            label="interactions", choices=[NO_INTERACTIONS, *interaction_sets()], value="off"
        )
        self.tta = ComboBox(label="TTA", choices=[1, 2, 4, 8], value=1)
        self.copy_button = PushButton(text="Copy prediction to labels")
        # segment and pick
        self.segment_button = PushButton(text="Segment tomogram")
        self.spacing = FloatSpinBox(label="particle spacing (Å)", value=100.0, max=1e5)
        self.size = FloatSpinBox(label="min particle size (Å³)", value=1000.0, max=1e12)
        self.pick_button = PushButton(text="Pick")
        self.status = Label(label="status", value="open a tomogram, then Add feature")

        self.extend(
            [
                self.tomogram, self.feature, self.add_feature_button, self.box_size, self.apix,
                self.counts, self.out_folder, self.save_button, self.arch, self.epochs,
                self.batch_size, self.train_button, self.cancel_button, self.progress, self.loss,
                self.model, self.model_path, self.load_button, self.live, self.threshold,
                self.tta, self.interactions, self.copy_button, self.segment_button,
                self.spacing, self.size, self.pick_button, self.status,
            ]
        )  # fmt: skip
        for label in (self.counts, self.loss, self.status):
            label.native.setWordWrap(True)
        self.native.setMaximumWidth(520)
        self.add_feature_button.changed.connect(self.add_feature)
        self.save_button.changed.connect(self.save)
        self.train_button.changed.connect(self.train)
        self.cancel_button.changed.connect(self.cancel)
        self.load_button.changed.connect(lambda: self.load_model(self.model_path.value))
        self.copy_button.changed.connect(self.copy_prediction)
        self.segment_button.changed.connect(self.segment)
        self.pick_button.changed.connect(self.pick)
        for w in (self.box_size, self.apix):
            w.changed.connect(self.update_counts)
        self.threshold.changed.connect(self._threshold_changed)
        self.model.changed.connect(self._model_selected)
        self.interactions.changed.connect(self._interactions_changed)
        self.tta.changed.connect(self.refresh_preview)
        self.live.changed.connect(self.refresh_preview)
        self.tomogram.changed.connect(self._tomogram_changed)
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self.viewer.dims.events.current_step.connect(self.refresh_preview)
        for path in io.listen_for_models(self._model_offered):
            self._model_offered(path)
        self._tomogram_changed()

    # layers ----------------------------------------------------------------------------------

    def _image_layers(self, *_: Any) -> list[str]:
        from napari.layers import Image

        return [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and layer.ndim == 3
            and not layer.metadata.get("ais_preview")
            and not layer.metadata.get("ais_segmentation")
        ]

    def _model_titles(self, *_: Any) -> list[str]:
        return list(self.models)

    def _layers_changed(self, event: Any = None) -> None:
        self.tomogram.reset_choices()
        layer = getattr(event, "value", None)
        if layer is not None and getattr(layer, "metadata", {}).get("ais_feature"):
            layer.events.paint.connect(self.update_counts)
            layer.events.set_data.connect(self.update_counts)
        self.update_counts()

    def image(self) -> Image:
        name = self.tomogram.value
        if not name or name not in self.viewer.layers:
            raise AisInputError("no tomogram: open an .mrc file (File → Open) first")
        return self.viewer.layers[name]

    def volume(self) -> Volume:
        """The selected tomogram as a Volume (voxel size and origin from the layer)."""
        layer = self.image()
        meta = layer.metadata
        voxel = float(meta.get("voxel_size_A") or layer.scale[-1])
        origin = tuple(meta.get("origin_A") or (0.0, 0.0, 0.0))
        path = Path(meta["ais_path"]) if meta.get("ais_path") else None
        return Volume(layer.data, voxel, origin, path)  # type: ignore[arg-type]

    def tomogram_path(self) -> Path:
        volume = self.volume()
        if volume.path is None:
            raise AisInputError(
                f"layer {self.tomogram.value!r} has no file; open the tomogram from an .mrc file "
                "so its labels and results can be saved next to it"
            )
        return volume.path

    def output_folder(self) -> Path:
        if self.out_folder.value:
            return Path(self.out_folder.value)
        return self.tomogram_path().parent / "ais_torch"

    def _tomogram_changed(self, *_: Any) -> None:
        for title in list(self.predictors):
            self._drop_predictor(title)
        self.update_counts()
        self.refresh_preview()

    def feature_layers(self, feature: str | None = None) -> list[Labels]:
        from napari.layers import Labels

        feature = feature or self.feature.value
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and layer.metadata.get("ais_feature") == feature
        ]

    # annotate --------------------------------------------------------------------------------

    @safe
    def add_feature(self, *_: Any) -> Labels:
        """A Labels layer named after the feature on the selected tomogram (1 = feature, 2 =
        ignore, 0 on a painted slice = negative)."""
        feature = self.feature.value.strip()
        if not feature:
            raise AisInputError("feature name is empty; type one (e.g. Membrane)")
        image = self.image()
        for layer in self.feature_layers(feature):
            if layer.metadata.get("ais_tomogram") == image.name:
                self.viewer.layers.selection.active = layer
                return layer
        name = feature if not self.feature_layers(feature) else f"{feature} ({image.name})"
        colour = FEATURE_COLOURS[len(self._features()) % len(FEATURE_COLOURS)]
        metadata = {
            **{k: image.metadata.get(k) for k in ("ais_path", "voxel_size_A", "origin_A")},
            "ais_feature": feature,
            "ais_tomogram": image.name,
            "ais_colour": colour,
        }
        layer = self.viewer.add_labels(
            np.zeros(image.data.shape, np.uint8),
            name=name,
            scale=image.scale,
            translate=image.translate,
            metadata=metadata,
            colormap=_label_colours(colour),
        )
        layer.mode = "paint"
        layer.selected_label = 1
        self.status.value = f"paint {feature}: 1 = feature, 2 = ignore; 0 on a painted slice = not"
        return layer

    def _features(self) -> list[str]:
        from napari.layers import Labels

        found = [
            layer.metadata.get("ais_feature")
            for layer in self.viewer.layers
            if isinstance(layer, Labels)
        ]
        return list(dict.fromkeys(f for f in found if f))

    def annotated(self, feature: str | None = None) -> list[Annotated]:
        """Every tomogram's labels of ``feature`` (several tomograms can feed one feature)."""
        items = []
        for layer in self.feature_layers(feature):
            tomo_name = layer.metadata.get("ais_tomogram")
            tomo = self.viewer.layers[tomo_name] if tomo_name in self.viewer.layers else None
            path = layer.metadata.get("ais_path") or ""
            items.append(
                Annotated(
                    tomogram=Path(path or f"{tomo_name}.mrc"),
                    labels=np.asarray(layer.data),
                    voxel_size_A=float(layer.metadata.get("voxel_size_A") or layer.scale[-1]),
                    origin_A=tuple(layer.metadata.get("origin_A") or (0.0, 0.0, 0.0)),
                    tomogram_shape=tuple(tomo.data.shape) if tomo is not None else None,
                )
            )
        return items

    def update_counts(self, *_: Any) -> str:
        try:
            items = self.annotated()
            if not items:
                text = "no feature layer: Add feature"
            else:
                apix = self.apix.value or None
                text = summarise(items, box_size=self.box_size.value, apix=apix).text()
        except AisError as err:
            text = f"error: {err}"
        self.counts.value = text
        return text

    @safe
    def save(self, *_: Any) -> tuple[list[Path], list[str]]:
        """Write the feature's label volumes; print the command line that trains on them."""
        feature = self.feature.value.strip()
        items = self.annotated(feature)
        if not items:
            raise AisInputError(f"feature {feature!r} has no labels layer; press Add feature")
        folder = self.output_folder()
        saved = save_annotations(items, feature, folder / "annotations")
        annotated = [i for i in items if np.asarray(i.labels).any()]
        settings = self.train_settings(feature, items)
        overrides = train_overrides(settings, [i.tomogram for i in annotated], saved)
        self.last_command = train_command(overrides)
        print(self.last_command)
        self.status.value = f"saved {len(saved)} label volume(s) in {folder / 'annotations'}"
        return saved, overrides

    def train_settings(self, feature: str, items: list[Annotated]) -> TrainSettings:
        layers = self.feature_layers(feature)
        colour = layers[0].metadata.get("ais_colour", FEATURE_COLOURS[0]) if layers else None
        return TrainSettings(
            title=feature,
            arch=str(self.arch.value),
            box_size=int(self.box_size.value),
            apix=float(self.apix.value) or None,
            epochs=int(self.epochs.value),
            batch_size=int(self.batch_size.value),
            colour=tuple(colour or FEATURE_COLOURS[0]),  # type: ignore[arg-type]
        )

    # train -----------------------------------------------------------------------------------

    @safe
    def train(self, *_: Any) -> Any:
        """Save the annotations, then ``ais-torch train`` in a worker; the model loads when done."""
        from napari.qt.threading import create_worker

        from ais_torch.napari.training import run_training

        result = self.save()
        if result is None:
            return None
        _, overrides = result
        feature = self.feature.value.strip()
        run_dir = self.output_folder() / "runs" / f"{feature}_{time.strftime('%Y%m%d_%H%M%S')}"
        overrides = [*overrides, *self.extra_overrides]
        self.last_command = train_command(overrides, run_dir)
        print(self.last_command)
        self.cancel_event = threading.Event()
        self.losses = []
        self.progress.value = 0
        self._busy(True)
        self.status.value = f"training {feature} ({self.arch.value})…"
        worker = create_worker(
            run_training,
            overrides,
            run_dir,
            report=self._report,
            cancel=self.cancel_event,
            _ignore_errors=True,
        )
        worker.returned.connect(self._trained)
        worker.errored.connect(self._train_failed)
        worker.finished.connect(self._train_finished)
        worker.start()
        self.worker = worker
        return worker

    extra_overrides: list[str] = []  # noqa: RUF012 (tests shorten a run: trainer.limit_train_batches=...)

    @ensure_main_thread
    def _report(self, progress: Progress) -> None:
        self.progress.max = max(1, progress.total)
        self.progress.value = min(progress.step, progress.total)
        if progress.loss is not None:
            self.losses.append(progress.loss)
            self.loss.value = f"{progress.loss:.4f} {spark(self.losses, 30)}"
        self.status.value = f"training: {progress.text()}"

    def cancel(self, *_: Any) -> None:
        self.cancel_event.set()
        self.status.value = "cancelling…"

    def _busy(self, busy: bool) -> None:
        """Train and Segment share the progress bar and the Cancel button: one job at a time."""
        self.train_button.enabled = not busy
        self.segment_button.enabled = not busy
        self.cancel_button.enabled = busy

    def _trained(self, result: TrainResult) -> None:
        self.train_log = self.status.value
        self.status.value = f"trained: {result.model_path}"
        self.load_model(result.model_path)

    def _train_failed(self, err: BaseException) -> None:
        self.status.value = f"training stopped: {err}"
        notify_error(err)

    def _train_finished(self) -> None:
        self._busy(False)

    # models and preview ----------------------------------------------------------------------

    def _model_offered(self, path: Path) -> None:
        self.load_model(path)

    @safe
    def load_model(self, path: str | Path) -> str:
        """Read a model file (.scnm/.scnmgroup) and preview it on the current slice."""
        from ais_torch.formats.scnm import read_metadata

        path = Path(path)
        if not str(path) or not path.is_file():
            raise AisInputError(f"{path}: model file not found; give the path of a .scnm file")
        title = read_metadata(path).title
        self._drop_predictor(title)
        self.models[title] = path
        self.last_model = path
        self.model.reset_choices()
        self.model.value = title
        self.status.value = f"model {title} loaded from {path.name}"
        self.refresh_preview()
        return title

    def predictor(self, title: str) -> SlicePredictor:
        if title not in self.predictors:
            self.predictors[title] = SlicePredictor(self.volume(), self.models[title])
        return self.predictors[title]

    def _drop_predictor(self, title: str) -> None:
        self.predictors.pop(title, None)
        self.queues.pop(title, None)
        self._drop_joint()

    def _drop_joint(self) -> None:
        self.joint = None
        self.joint_queue = None

    def interaction_set(self) -> str | None:
        """The chosen named rule set, or ``None`` when the models run on their own."""
        value = str(self.interactions.value or NO_INTERACTIONS)
        return None if value == NO_INTERACTIONS else value

    def _interactions_changed(self, *_: Any) -> None:
        self._drop_joint()
        self.refresh_preview()

    def joint_preview(self) -> InteractionPreview:
        """Every loaded model's preview through the chosen interactions (built once)."""
        name = self.interaction_set()
        if name is None:
            raise AisInputError("interactions are off; choose a rule set first")
        if self.joint is None or self.joint.name != name:
            predictors = {title: self.predictor(title) for title in self.models}
            self.joint = InteractionPreview(predictors, name)
            self.joint_queue = None
        return self.joint

    def current_z(self) -> int:
        image = self.image()
        z = image.world_to_data(self.viewer.dims.point)[0]
        return int(np.clip(round(float(z)), 0, image.data.shape[0] - 1))

    def refresh_preview(self, *_: Any) -> None:
        """Ask every loaded model for the displayed slice (newest request wins)."""
        if not self.live.value or not self.models or not self._image_layers():
            return
        try:
            key = (self.current_z(), int(self.tta.value))
            if self.interaction_set() is not None:
                self._joint_queue().request(key)
                return
            for title in self.models:
                self._queue(title).request(key)
        except Exception as err:
            self.status.value = f"preview: {err}"
            notify_error(err)

    def _queue(self, title: str) -> NewestWins[tuple[int, int], np.ndarray]:
        if title not in self.queues:
            predictor = self.predictor(title)
            self.queues[title] = NewestWins(
                lambda key: predictor.predict(*key),
                lambda key, prob: self.show_preview(title, key[0], prob),
                on_error=lambda key, err: notify_error(err),
                run_async=_napari_async,
            )
        return self.queues[title]

    def _joint_queue(self) -> NewestWins[tuple[int, int], dict[str, np.ndarray]]:
        joint = self.joint_preview()
        if self.joint_queue is None:
            self.joint_queue = NewestWins(
                lambda key: joint.predict(*key),
                lambda key, probs: self.show_previews(key[0], probs),
                on_error=lambda key, err: notify_error(err),
                run_async=_napari_async,
            )
        return self.joint_queue

    def show_previews(self, z: int, probs: dict[str, np.ndarray]) -> None:
        for title, prob in probs.items():
            self.show_preview(title, z, prob)

    def show_preview(self, title: str, z: int, prob: np.ndarray) -> Image:
        """The model's probabilities of slice ``z`` as a 2D image in its colour."""
        name = f"{title} preview"
        image = self.image()
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = prob
        else:
            colour = self.predictor(title).metadata.colour or FEATURE_COLOURS[0]
            layer = self.viewer.add_image(
                prob,
                name=name,
                scale=image.scale[-2:],
                translate=image.translate[-2:],
                colormap=_colour_map(title, colour),
                blending="additive",
                contrast_limits=(0.0, 1.0),
                metadata={"ais_preview": title},
            )
        layer.metadata["ais_z"] = z
        self._restyle_previews()
        self.status.value = f"{title}: slice {z}"
        return layer

    def threshold_of(self, title: str) -> float:
        return float(self.thresholds.get(title, DEFAULT_THRESHOLD))

    def _threshold_changed(self, *_: Any) -> None:
        """The slider is the selected model's threshold (each preview keeps its own)."""
        title = self.model.value
        if title:
            self.thresholds[title] = float(self.threshold.value)
        self._restyle_previews()

    def _model_selected(self, *_: Any) -> None:
        title = self.model.value
        if title:
            self.threshold.value = self.threshold_of(title)

    def _restyle_previews(self, *_: Any) -> None:
        """Each preview hides the probabilities below its model's threshold."""
        for layer in self.viewer.layers:
            title = layer.metadata.get("ais_preview")
            if title:
                layer.contrast_limits = (self.threshold_of(title), 1.0)

    def preview_now(self, title: str | None = None) -> np.ndarray:
        """The current slice's probabilities, computed here (blocking) if not cached."""
        title = title or self.model.value
        if not title:
            raise AisInputError("no model loaded: train one or open a .scnm file")
        key = (self.current_z(), int(self.tta.value))
        if self.interaction_set() is not None:
            return self.joint_preview().predict(*key)[title]
        return self.predictor(title).predict(*key)

    @safe
    def copy_prediction(self, *_: Any) -> int:
        """Write the thresholded preview of this slice into the feature's labels, to correct."""
        title = self.model.value
        prob = self.preview_now(title)
        layers = [
            layer
            for layer in self.feature_layers(title)
            if layer.metadata.get("ais_tomogram") == self.tomogram.value
        ]
        if not layers:
            self.feature.value = title
            layers = [self.add_feature()]
        layer = layers[0]
        z = self.current_z()
        data = layer.data
        data[z] = threshold_mask(prob, float(self.threshold.value))
        layer.data = data
        layer.refresh()
        self.update_counts()
        n = int(data[z].sum())
        self.status.value = f"copied {n} feature pixels of {title} to {layer.name}, slice {z}"
        return n

    # segment and pick ------------------------------------------------------------------------

    @safe
    def segment(self, *_: Any) -> Any:
        """Segment the whole tomogram in a worker, with progress and Cancel: the chosen model,
        or with interactions on, every loaded model through them (as ``ais-torch segment``)."""
        from napari.qt.threading import create_worker

        title = self.model.value
        if not title:
            raise AisInputError("no model loaded: train one or open a .scnm file")
        tomo = self.tomogram_path()
        out = self.output_folder()
        name = self.interaction_set()
        titles = list(self.models) if name is not None else [title]
        self.status.value = f"segmenting {tomo.name} with {', '.join(titles)}…"
        self.cancel_event = threading.Event()
        self.progress.value = 0
        self._busy(True)
        worker = create_worker(
            segment_file,
            [self.models[t] for t in titles],
            tomo,
            out,
            int(self.tta.value),
            interactions=name,
            report=self._segment_report,
            cancel=self.cancel_event,
            _ignore_errors=True,
        )
        worker.returned.connect(self._segmented)
        worker.errored.connect(self._segment_failed)
        worker.finished.connect(lambda: self._busy(False))
        worker.start()
        self.worker = worker
        return worker

    @ensure_main_thread
    def _segment_report(self, done: int, total: int) -> None:
        self.progress.max = max(1, total)
        self.progress.value = min(done, total)
        self.status.value = f"segmenting: {done}/{total} slices"

    def _segment_failed(self, err: BaseException) -> None:
        self.status.value = f"segmentation stopped: {err}"
        notify_error(err)

    def _segmented(self, paths: list[Path]) -> None:
        for path in paths:
            self._show_segmentation(path)
        title = self.model.value
        chosen = [p for p in paths if split_name(p)[1] == file_safe(title)[0]]
        self.last_segmentation = (chosen or paths)[-1]
        self.status.value = f"wrote {', '.join(str(p) for p in paths)}"

    def _show_segmentation(self, path: Path) -> None:
        data, kwargs, _ = io.tomogram_layer(path)
        title = split_name(path)[1]
        if title not in self.models:
            title = self.model.value
        colour = self.predictor(title).metadata.colour if title in self.models else None
        kwargs.update(
            colormap=_colour_map(f"{title} segmentation", colour or FEATURE_COLOURS[0]),
            blending="additive",
            contrast_limits=(0, 255),
            rendering="iso",  # the 3D view (Ctrl+Y) shows the surface at the threshold
            iso_threshold=self.threshold_of(title) * 255,
        )
        kwargs["metadata"]["ais_segmentation"] = title
        kwargs["name"] = path.stem
        if path.stem in self.viewer.layers:
            self.viewer.layers.remove(path.stem)
        self.viewer.add_image(data, **kwargs)

    @safe
    def pick(self, *_: Any) -> Any:
        """Pick particles in the last segmentation into a points layer and a .star file."""
        from ais_torch.picking.settings import PickSettings

        path = self.last_segmentation
        if path is None:
            raise AisInputError("no segmentation yet: press Segment tomogram first")
        settings = PickSettings(
            threshold=float(self.threshold.value),
            spacing_A=float(self.spacing.value),
            size_A3=float(self.size.value),
        ).checked()
        xyz, star = pick_file(path, settings)
        v = float(read_volume(path, check_finite=False).voxel_size_A)
        diameter_px = max(3.0, float(self.spacing.value) / v)
        layer = self.viewer.add_points(
            xyz[:, ::-1],
            name=f"{path.stem} picks",
            scale=(v, v, v),
            size=diameter_px,
            face_color="transparent",
            border_color="yellow",
            metadata={"ais_path": str(star)},
        )
        self.status.value = f"{len(xyz)} particles → {star}"
        return layer

    def close(self) -> None:
        io.stop_listening(self._model_offered)
        super().close()


class SegmentationCancelled(AisError):
    """The user pressed Cancel; no segmentation file was written."""


def segment_file(
    models: list[Path],
    tomogram: Path,
    out: Path,
    tta: int = 1,
    *,
    interactions: str | None = None,
    report: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Path]:
    """One tomogram with ``models`` → ``<out>/<tomo>__<title>.mrc`` each, as ``ais-torch segment
    interactions=<name>`` writes them (the library's ``segment_volume``, competition from the
    models' metadata as in a batch, the named rules on top).

    ``report(done, total)`` follows the engine's progress in slices × models; ``cancel`` stops
    the run at the next slab with :class:`SegmentationCancelled`. Files are written only after
    every model is done, each atomically: a cancelled or failed run leaves none.
    """
    from ais_torch.formats.naming import result_name
    from ais_torch.segmentation.api import Segmenter, segment_volume

    volume = read_volume(tomogram)
    segmenter = Segmenter.build([str(m) for m in models], tta=tta, interactions=interactions)
    total = int(volume.shape[0]) * len(segmenter.models)
    done = 0

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise SegmentationCancelled(f"{tomogram.name}: segmentation cancelled; nothing written")

    def tick(n: int) -> None:
        nonlocal done
        check()
        done += int(n)
        if report is not None:
            report(done, total)

    check()
    predictions = segment_volume(volume, segmenter, on_progress=tick)
    check()
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_volume(
            out / result_name(tomogram, title),
            np.asarray(array),
            voxel_size_A=volume.voxel_size_A,
            origin_A=volume.origin_A,
        )
        for title, array in predictions.items()
    ]


def pick_file(segmentation: Path, settings: Any) -> tuple[np.ndarray, Path]:
    """Pick a segmentation as ``ais-torch pick`` does; the picks are also written as ``.star``
    and as the paper's ``.txt`` (x y z voxels)."""
    from ais_torch.formats.coordinates import write_coordinates_txt, write_star
    from ais_torch.formats.naming import split_name
    from ais_torch.picking.settings import pick_array

    volume = read_volume(segmentation)
    picks = pick_array(np.asarray(volume.data), volume.voxel_size_A, settings)
    star = segmentation.with_suffix(".star")
    write_star(
        star,
        picks.xyz,
        tomo_name=split_name(segmentation)[0],
        voxel_size_A=volume.voxel_size_A,
        shape_zyx=volume.shape,
    )
    write_coordinates_txt(segmentation.with_suffix(".txt"), picks.xyz)
    return np.asarray(picks.xyz, dtype=np.float64), star


def _napari_async(
    job: Callable[[], Any], on_done: Callable[[Any], None], on_error: Callable[[Any], None]
) -> None:
    from napari.qt.threading import create_worker

    worker = create_worker(job, _ignore_errors=True)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.start()


def _label_colours(colour: tuple[float, ...]) -> Any:
    """1 = the feature's colour, 2 = grey (ignore)."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={
            None: (0, 0, 0, 0),
            0: (0, 0, 0, 0),
            1: (*colour[:3], 0.7),
            2: (0.5, 0.5, 0.5, 0.5),
        }
    )


def _colour_map(name: str, colour: Any) -> Any:
    from napari.utils.colormaps import Colormap

    rgb = [float(c) for c in list(colour)[:3]]
    return Colormap([[0, 0, 0, 0], [*rgb, 1.0]], name=name)
