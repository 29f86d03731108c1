"""``python -m ais_torch.export``, kept as a spelling of ``ais-torch export``."""

import sys

from ais_torch.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
