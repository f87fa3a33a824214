"""Files in and out: column names (:mod:`.columns`), claim readers (:mod:`.readers`, the entry;
the fast CSV path :mod:`.csv_fast`), typing rows (:mod:`.validation`, with :mod:`.amounts`,
:mod:`.ids`, :mod:`.totals_rows` and the one rejects frame :mod:`.rejects`), results files
(:mod:`.results`, the frame :mod:`.results_frame`) and writers (:mod:`.writers`, the one
atomic writer; :mod:`.csv_writer`, :mod:`.xlsx_writer`, :mod:`.cells`).  Importing the package
imports none of them (nor polars)."""
