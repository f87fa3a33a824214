"""The calculation itself, pure Python on integers of fen: rule files (:mod:`.rules`), the bracket
schedule (:mod:`.brackets`), claims (:mod:`.claims`) and the scalar engine (:mod:`.engine`)."""
