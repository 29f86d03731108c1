"""``python -m ais_torch.evaluate``, kept as a spelling of ``ais-torch evaluate``."""

import sys

from ais_torch.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
