"""``python -m ais_torch.pick``, kept as a spelling of ``ais-torch pick``."""

import sys

from ais_torch.commands.pick import main

if __name__ == "__main__":
    sys.exit(main())
