"""``python -m ais_torch.segment``, kept as a spelling of ``ais-torch segment``."""

import sys

from ais_torch.commands.segment import main

if __name__ == "__main__":
    sys.exit(main())
