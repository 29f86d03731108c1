"""3D scenes of tomograms, segmentations, picks and meshes (pyvista), interactive or headless."""
