"""Scores: Dice/IoU of segmentations, matched F1 and CZII F-beta of picks."""
