"""``python -m medaid.spark``: settle one batch on Spark (:func:`medaid.spark.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
