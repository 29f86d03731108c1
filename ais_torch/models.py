"""``python -m ais_torch.models``, kept as a spelling of ``ais-torch inspect``."""

import sys

from ais_torch.commands.inspect import main

if __name__ == "__main__":
    sys.exit(main())
