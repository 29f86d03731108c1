"""``python -m ais_torch``: point to the real commands."""

print(
    "ais_torch commands:\n"
    "  python -m ais_torch.demo out=DIR                 write the synthetic demo data\n"
    "  python -m ais_torch.train +experiment=membrane     train a model on the demo data\n"
    "  python -m ais_torch.segment model=M.scnm data=DIR out=SEG   segment tomograms\n"
    "  python -m ais_torch.pick data=SEG feature=Antibody out=PICKS  pick particles\n"
    "  python -m ais_torch.mesh data=SEG feature=Membrane out=MESH   export .obj meshes\n"
    "  python -m ais_torch.view data=SEG screenshot=view.png          render in 3D\n"
    "  python -m ais_torch.evaluate seg=S.mrc label=L.mrc           score a result\n"
    "  python -m ais_torch.models info M.scnm                        inspect a model file\n"
    "  python -m ais_torch.export model=M.scnm format=onnx|keras    convert a model\n"
    "see README.md and docs/ for more"
)
