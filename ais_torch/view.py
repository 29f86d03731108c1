"""``python -m ais_torch.view``, kept as a spelling of ``ais-torch view``."""

from ais_torch.commands.view import main

if __name__ == "__main__":
    main()
