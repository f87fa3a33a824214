"""How tests/data/ledger-v1.sqlite3 was made: with the code before medaid.ledger.schema existed
(branch restructure/layout at f1c5c78), run from the repo root:

    PYTHONPATH=src python tests/data/make_ledger_v1.py tests/data/ledger-v1.sqlite3

The file is a fixture: never regenerate it with newer code (tests/test_ledger_schema.py checks
that ledgers written by older code still verify).
"""

import sys

from medaid import Claim, load_rules
from medaid.ledger import Ledger

book = load_rules("rules")
with Ledger(sys.argv[1]) as lg:
    lg.settle(Claim.from_yuan(claim_id="C1", person_id="P1", date="2024-05-03", self_pay="30000",
                              group="key", kind="inpatient", hospital="县人民医院", total_cost="52000"), book)
    lg.settle(Claim.from_yuan(claim_id="C2", person_id="P1", date="2024-06-10", self_pay="12345.67",
                              group="key", kind="inpatient"), book)
    lg.settle(Claim.from_yuan(claim_id="C3", person_id="P2", date="2024-07-01", self_pay="800"), book)
    lg.reverse("C2", "wrong self-pay entered")
    lg.settle(Claim.from_yuan(claim_id="C2", person_id="P1", date="2024-06-10", self_pay="2345.67",
                              group="key", kind="inpatient"), book)
    lg.settle(Claim.from_yuan(claim_id="C4", person_id="P1", date="2024-09-01", self_pay="150000",
                              group="key", kind="inpatient"), book)
