"""Column names of claim files and result files, in English and as Chinese exports carry them.

One place for the vocabulary shared by the readers, the batch path, the report and Spark.
Money columns hold fen (``Int64``) inside frames; files carry yuan with two decimals.
"""

from __future__ import annotations

from typing import Final

#: Claim fields, in the order results are written.
CLAIM_FIELDS: Final = (
    "claim_id", "person_id", "date", "self_pay", "group", "kind", "hospital", "total_cost",
)
#: Fields a claim file must have (group and kind may be absent when the rule set has a default
#: plan; hospital and total cost are optional).
REQUIRED_FIELDS: Final = ("claim_id", "person_id", "date", "self_pay")
#: Fields that identify a claim or a person: text, never numbers (see
#: :func:`medaid.validation.number_as_id` for an ID a file holds as a number).
ID_FIELDS: Final = ("claim_id", "person_id")
#: Claim fields that are amounts of money (fen in frames, yuan in files).
CLAIM_MONEY_FIELDS: Final = ("self_pay", "total_cost")

#: Header names accepted for each field (matched after stripping and case-folding).
HEADER_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "claim_id": ("claim_id", "claim", "claim id", "结算单号", "结算编号", "单据号", "就诊流水号"),
    "person_id": ("person_id", "person", "person id", "人员编号", "身份证号", "个人编号", "证件号码"),
    "date": ("date", "settlement_date", "结算日期", "结算时间", "出院日期"),
    "self_pay": ("self_pay", "self-pay", "compliant_self_pay", "合规自付费用", "合规自付", "政策范围内自付"),
    "group": ("group", "beneficiary_group", "救助对象类别", "人员类别", "救助类别"),
    "kind": ("kind", "claim_kind", "visit_type", "就诊类型", "医疗类别"),
    "hospital": ("hospital", "institution", "医疗机构", "医疗机构名称", "定点医疗机构"),
    "total_cost": ("total_cost", "total", "医疗总费用", "总费用", "费用总额"),
    "major_disease": ("major_disease", "critical_illness", "大病", "重特大疾病", "是否大病"),
}

#: Columns the batch adds to each claim, in this order, after the claim's own columns.
RESULT_FIELDS: Final = (
    "plan",           # plan name
    "pool",           # accumulation pool
    "benefit_year",   # Int32
    "relief",         # fen
    "patient_pays",   # fen: self_pay − relief
    "bracket_relief", # fen: the increment before caps
    "capped_by",      # "annual_cap" | "claim_cap" | "self_pay" | null
    "bracket",        # Int8: highest bracket the claim's base reached (0 = below the threshold)
    "ytd_self_pay",   # fen: the pool's year-to-date self-pay after the claim
    "ytd_relief",     # fen: the pool's year-to-date relief after the claim
    "rule_set_id",
    "rule_version",
    "rule_hash",
)
#: Result columns that are money (fen in frames, yuan with two decimals in files).
RESULT_MONEY_FIELDS: Final = ("relief", "patient_pays", "bracket_relief", "ytd_self_pay", "ytd_relief")
