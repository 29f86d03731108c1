"""``python -m ais_torch.mesh``, kept as a spelling of ``ais-torch mesh``."""

import sys

from ais_torch.commands.mesh import main

if __name__ == "__main__":
    sys.exit(main())
