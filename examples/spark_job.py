"""Driver script for ``spark-submit``: settle a claim batch on a Spark cluster with medaid.

    spark-submit --master yarn --deploy-mode client \\
        --archives medaid-env.tar.gz#env \\
        --conf spark.pyspark.python=./env/bin/python \\
        examples/spark_job.py hdfs:///claims/2024/ -o hdfs:///medaid/results-2024 \\
        --rules rules/ --on-error skip --rejects hdfs:///medaid/rejects-2024.csv

Same arguments as ``python -m medaid.spark`` (``--help``).  The master comes from
spark-submit; the rule files are read on the driver and shipped to the executors.
"""

import sys

from medaid.spark import main

if __name__ == "__main__":
    sys.exit(main())
