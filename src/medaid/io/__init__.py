"""Files in and out: column names (:mod:`.columns`), claim readers (:mod:`.readers`, the fast CSV
path :mod:`.csv_fast`), row checks (:mod:`.validation`), results files (:mod:`.results`) and
writers (:mod:`.writers`)."""
