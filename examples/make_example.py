"""Generate the bundled example year of claims (``examples/claims-2024.csv``), seeded.

    python examples/make_example.py                      # 5,000 claims, seed 2024
    python examples/make_example.py --claims 20000 --seed 7 -o my-claims.csv

The file looks like a county medical-insurance export: Chinese headers (结算单号, 人员编号,
结算日期, 医疗机构, 救助对象类别, 就诊类型, 医疗总费用, 合规自付费用, 是否大病, 备注), UTF-8 with a
byte-order mark as Excel writes it, claims in settlement order.  Persons are skewed (a few
chronic patients have many claims), self-pay is lognormal, groups are ``key`` (重点救助对象)
and ``low-income`` (低保边缘), kinds ``inpatient`` and ``outpatient-special`` (the bundled rules
have no outpatient plan for low-income recipients, so those only have inpatient stays).
The data is invented; no real person is in it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
from pathlib import Path

HEADERS = ["结算单号", "人员编号", "结算日期", "医疗机构", "救助对象类别", "就诊类型",
           "医疗总费用", "合规自付费用", "是否大病", "备注"]
HOSPITALS = [
    ("县人民医院", 0.40), ("县中医院", 0.25), ("中心卫生院", 0.15),
    ("市第一人民医院", 0.12), ("市妇幼保健院", 0.08),
]
NOTES = ["", "", "", "", "转诊", "异地就医", "慢病复诊"]


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def generate(claims: int, seed: int) -> list[list[str]]:
    """Rows of an export (without header): ``claims`` claims of one year, seeded."""
    rng = random.Random(seed)
    n_persons = max(1, claims // 4)
    # skewed: person weights follow a Zipf-like law
    weights = [1.0 / (k + 1) ** 0.6 for k in range(n_persons)]
    person_ids = [f"5002{rng.randrange(10**9, 10**10)}{k:04d}" for k in range(n_persons)]
    group_of = ["key" if rng.random() < 0.7 else "low-income" for _ in range(n_persons)]
    chosen = rng.choices(range(n_persons), weights=weights, k=claims)
    start = dt.date(2024, 1, 1)
    rows = []
    for k in chosen:
        day = start + dt.timedelta(days=rng.randrange(366))
        group = group_of[k]
        kind = "outpatient-special" if group == "key" and rng.random() < 0.35 else "inpatient"
        mu = 8.3 if kind == "inpatient" else 6.2  # median ~4,000 yuan inpatient, ~500 outpatient
        self_pay = int(round(math.exp(rng.gauss(mu, 1.0)) * 100))
        self_pay = min(self_pay, 60_000_000)
        total = self_pay + int(self_pay * rng.uniform(0.8, 3.0))
        hospital = rng.choices([h for h, _ in HOSPITALS], weights=[w for _, w in HOSPITALS])[0]
        rows.append([day, person_ids[k], group, kind, hospital, self_pay, total])
    rows.sort(key=lambda r: r[0])
    out = []
    for i, (day, person, group, kind, hospital, self_pay, total) in enumerate(rows, start=1):
        # flagged as a major (critical) disease case: an inpatient stay costing 30,000 yuan or more
        major = "是" if kind == "inpatient" and total >= 3_000_000 else "否"
        out.append([f"JS{day:%Y%m%d}{i:06d}", person, day.isoformat(), hospital, group, kind,
                    _yuan(total), _yuan(self_pay), major, rng.choice(NOTES)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("-o", "--output", default=str(Path(__file__).with_name("claims-2024.csv")))
    a = ap.parse_args()
    with open(a.output, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADERS)
        w.writerows(generate(a.claims, a.seed))
    print(f"wrote {a.claims} claims to {a.output}")


if __name__ == "__main__":
    main()
