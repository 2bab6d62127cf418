"""``python -m blockqnn`` runs the command line."""

import sys

from blockqnn.cli import main

sys.exit(main())
