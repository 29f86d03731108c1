"""``python -m ais_torch.train``, kept as a spelling of ``ais-torch train``."""

import sys

from ais_torch.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
