"""``python -m medaid.spark``: settle one batch on Spark (:func:`medaid.spark.job.main`)."""

import sys

from .job import main

sys.exit(main())
