"""``python -m medaid.cli``: the ``medaid`` command."""

import sys

from .app import main

sys.exit(main())
