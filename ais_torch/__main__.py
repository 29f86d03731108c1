"""``python -m ais_torch <verb> …``: the same as the ``ais-torch`` console script."""

import sys

from ais_torch.commands import main

if __name__ == "__main__":
    sys.exit(main())
