"""Allow `python -m workflows` as well as the `takedown` script."""

import sys

from workflows.cli import main

sys.exit(main())
