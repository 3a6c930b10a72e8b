"""``python -m resource_prediction``: the command line."""

import sys

from resource_prediction.cli import main

sys.exit(main())
