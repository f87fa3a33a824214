"""How tests/data/ledger-v5.sqlite3 was made: with the code of schema 5 (main at ca7d68b, before
migration 6 added the columns of issue 15), run from the repo root:

    PYTHONPATH=src python tests/data/make_ledger_v5.py tests/data/ledger-v5.sqlite3

Rows of every kind (settlements, a reversal, an adjustment it made, a claim with a channel and
a payee, one written by a service desk).  The file is a fixture: never regenerate it with newer
code (tests/test_ledger_schema.py checks that ledgers written by older code still verify).
"""

import sys

from medaid import Claim, load_rules
from medaid.ledger import Ledger

book = load_rules("rules")
with Ledger(sys.argv[1]) as lg:
    lg.settle(Claim.from_yuan(claim_id="C1", person_id="P1", date="2024-03-01", self_pay="10000",
                              group="key", kind="inpatient", hospital="县人民医院", total_cost="15000",
                              channel="one-stop"), book)
    lg.settle(Claim.from_yuan(claim_id="C2", person_id="P1", date="2024-05-03", self_pay="150000",
                              group="key", kind="inpatient", channel="application",
                              bank_account="6222021234561234", account_name="张三"), book)
    lg.settle(Claim.from_yuan(claim_id="C3", person_id="P2", date="2024-07-01", self_pay="800"), book,
              desk="desk-a")
    lg.reverse("C1", "wrong self-pay entered", book=book)
    print(lg.verify().head_hash)
