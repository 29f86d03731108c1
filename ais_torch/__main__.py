"""``python -m ais_torch``: point to the real commands."""

print(
    "ais_torch commands:\n"
    "  python -m ais_torch.demo out=DIR              write the synthetic demo data\n"
    "  python -m ais_torch.train +experiment=membrane  train a model on the demo data\n"
    "see README.md and docs/ for more"
)
