"""The Ais loop in napari: annotate a few slices, train, preview, correct, segment, pick.

A plugin (``napari.yaml``, found through the ``napari.manifest`` entry point) with a reader for
tomograms, models and picks, a writer for label volumes and the Ais dock widget. Everything the
widget does runs on the library's own functions (``ais-torch train``'s :func:`train`,
:class:`~ais_torch.segmentation.api.Segmenter`, :func:`~ais_torch.picking.settings.pick_array`);
the modules without Qt (:mod:`.io`, :mod:`.annotations`, :mod:`.preview`, :mod:`.training`) are
tested without a display. Install with ``pip install -e ".[napari]"``; docs/napari.md.
"""
