"""Allow `python -m workflows` as well as the `takedown` script."""

import sys

from workflows.cli.main import main

sys.exit(main())
