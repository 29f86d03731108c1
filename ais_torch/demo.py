"""``python -m ais_torch.demo``, kept as a spelling of ``ais-torch demo``."""

import sys

from ais_torch.commands.demo import main

if __name__ == "__main__":
    sys.exit(main())
