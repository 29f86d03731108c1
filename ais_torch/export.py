"""``python -m ais_torch.export``, kept as a spelling of ``ais-torch export``."""

from ais_torch.commands.export import main

if __name__ == "__main__":
    main()
