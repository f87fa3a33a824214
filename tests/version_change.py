"""A benefit year in which a new rule version lowers the annual cap (docs/rules.md, "Version
changes inside a benefit year"), shared by test_version_change.py and test_spark.py.

Version 2019.1 (the shipped file, cap 100,000 yuan per inpatient pool) is in force to 30
September 2019; version 2019.2, the same brackets with a cap of 50,000, from 1 October.
Every expected figure below is worked out by hand from the brackets 70% / 85% / 95% of the parts
from 1,000 / 10,000 / 50,000 yuan (key recipients, inpatient, claim mode).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: claim id, person, date, self-pay (yuan)
CLAIMS = [
    ("A1", "P1", "2019-05-01", "80000"),     # 6,300 + 34,000 + 30,000 × 95% = 68,800
    ("A2", "P1", "2019-09-30", "5000"),      # 4,000 × 70% = 2,800; cap 100,000 still in force
    ("A3", "P1", "2019-11-01", "20000"),     # 6,300 + 8,500 = 14,800; 50,000 − 71,600 < 0 → 0
    ("A4", "P1", "2019-11-02", "500"),       # below the threshold: 0, and no cap reduced it
    ("B1", "P2", "2019-03-01", "30000"),     # 6,300 + 17,000 = 23,300
    ("B2", "P2", "2019-10-15", "40000"),     # 6,300 + 25,500 = 31,800; 50,000 − 23,300 = 26,700
    ("B3", "P2", "2019-12-01", "10000"),     # 9,000 × 70% = 6,300; 50,000 − 50,000 = 0 → 0
    ("C1", "P3", "2019-11-20", "10000.01"),  # 6,300 + 0.01 × 85% = 6,300.0085 → 6,300.01
]

#: claim id → (relief, bracket relief, capped_by, bracket, rule version), fen
EXPECTED = {
    "A1": (6_880_000, 6_880_000, None, 3, "2019.1"),
    "A2": (280_000, 280_000, None, 1, "2019.1"),
    "A3": (0, 1_480_000, "annual_cap", 2, "2019.2"),
    "A4": (0, 0, None, 0, "2019.2"),
    "B1": (2_330_000, 2_330_000, None, 2, "2019.1"),
    "B2": (2_670_000, 3_180_000, "annual_cap", 2, "2019.2"),
    "B3": (0, 630_000, "annual_cap", 1, "2019.2"),  # 10,000 exactly: bracket 2 not entered
    "C1": (630_001, 630_001, None, 2, "2019.2"),
}

#: counted by hand from EXPECTED: A3, B2, B3 capped; P1 and P2 at the annual cap
CLAIMS_CAPPED = 3
PERSONS_AT_ANNUAL_CAP = 2
#: claims by highest bracket reached 0, 1, 2, 3 (A4; A2, B3; A3, B1, B2, C1; A1)
BRACKET_COUNTS = [1, 2, 4, 1]


def write_rules(folder: Path) -> Path:
    """The two versions, made from the shipped file: 2019.1 ends on 30 September; 2019.2 lowers
    both inpatient plans' cap to 50,000 (the examples a 50,000 cap changes are left out)."""
    text = (ROOT / "rules" / "chongqing-county-2019.toml").read_text(encoding="utf-8")
    assert text.count("valid_from = 2019-01-01\n") == 1 and text.count('annual_cap = "100000"') == 2
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v2019-1.toml").write_text(
        text.replace("valid_from = 2019-01-01\n", "valid_from = 2019-01-01\nvalid_to = 2019-09-30\n"),
        encoding="utf-8")
    lowered = (text.replace('version = "2019.1"', 'version = "2019.2"')
               .replace("valid_from = 2019-01-01", "valid_from = 2019-10-01")
               .replace('annual_cap = "100000"', 'annual_cap = "50000"'))
    lowered = "\n".join(line for line in lowered.splitlines()
                        if '"100000"' not in line)  # the 100,000 yuan examples
    (folder / "v2019-2.toml").write_text(lowered + "\n", encoding="utf-8")
    return folder


def claims_csv(path: Path) -> Path:
    lines = ["claim_id,person_id,date,self_pay,group,kind"]
    lines += [f"{c},{p},{d},{a},key,inpatient" for c, p, d, a in CLAIMS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
