"""Model interactions and competition: one model's prediction conditioned on another's.

:func:`ais_torch.interactions.plan.build_postprocess` turns a rule set into the step that
segmentation runs between prediction and writing. Import-light on purpose.
"""
