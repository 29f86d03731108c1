#!/usr/bin/env python
"""Open the ais_torch viewer; same arguments as ``python -m ais_torch.view`` (see --help).

Example: ``python scripts/view.py data=segmented/ screenshot=scene.png``
"""

import sys

from ais_torch.commands.view import main

if __name__ == "__main__":
    sys.exit(main())
