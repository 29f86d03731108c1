"""``python -m ais_torch.view``, kept as a spelling of ``ais-torch view``."""

import sys

from ais_torch.commands.view import main

if __name__ == "__main__":
    sys.exit(main())
