"""Column names of claim files and result files, in English and as Chinese exports carry them.

One place for the vocabulary shared by the readers, the batch path, the report and Spark.
Money columns hold fen (``Int64``) inside frames; files carry yuan with two decimals.
"""

from __future__ import annotations

import unicodedata
from typing import Final

#: Claim fields, in the order results are written.
CLAIM_FIELDS: Final = (
    "claim_id", "person_id", "date", "self_pay", "group", "kind", "hospital", "total_cost",
    "household_id", "non_compliant",
)
#: Fields a claim file must have (group and kind may be absent when the rule set has a default
#: plan; hospital and total cost are optional).
REQUIRED_FIELDS: Final = ("claim_id", "person_id", "date", "self_pay")
#: Fields that identify a claim, a person or a household: text, never numbers (see
#: :func:`medaid.io.validation.number_as_id` for an ID a file holds as a number).
ID_FIELDS: Final = ("claim_id", "person_id", "household_id")
#: Claim fields that are amounts of money (fen in frames, yuan in files).
CLAIM_MONEY_FIELDS: Final = ("self_pay", "total_cost", "non_compliant")
#: Column of a frame read from a file holding each row's line as the user sees it (the header
#: is line 1 of a CSV file; the sheet row of an XLSX file; the record number of a Parquet file).
ROW: Final = "row"
#: Columns of a rejects frame, one record per problem (:mod:`medaid.io.rejects`).
REJECT_COLUMNS: Final = (ROW, "claim_id", "field", "message")

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
    # issue 15 (docs/calculation.md, *Rules real schemes need*): the household (户) a household
    # cap counts per, and the non-compliant cost a second stage may add to the burden (fen)
    "household_id": ("household_id", "household", "户号", "家庭编号", "户编号"),
    "non_compliant": ("non_compliant", "non-compliant cost", "非合规费用", "政策范围外费用", "目录外费用"),
}


def normalise_header(h: object) -> str:
    """A header cell as it is matched against the names of fields: NFKC (full-width letters and
    spaces as their ASCII forms), a byte-order mark removed, trimmed, case-folded.  The one
    header normalisation of claim files, results files and the Spark job."""
    text = "" if h is None else str(h)
    return unicodedata.normalize("NFKC", text).replace("\ufeff", "").strip().casefold()


#: Normalised alias (:func:`normalise_header`) → field, from :data:`HEADER_ALIASES`.
ALIAS_INDEX: Final[dict[str, str]] = {
    normalise_header(a): field for field, aliases in HEADER_ALIASES.items() for a in aliases
}


def alias_field(h: object) -> str | None:
    """The field a claim file's header names by one of its :data:`HEADER_ALIASES`, or ``None``."""
    return ALIAS_INDEX.get(normalise_header(h))


#: Columns the batch adds to each claim, in this order, after the claim's own columns.
RESULT_FIELDS: Final = (
    "plan",           # plan name
    "pool",           # accumulation pool
    "benefit_year",   # Int32
    "relief",         # fen
    "patient_pays",   # fen: self_pay − relief
    "bracket_relief", # fen: the increment before caps
    "capped_by",      # "annual_cap" | "claim_cap" | "self_pay": the limit that made relief < bracket_relief; else null
    "bracket",        # Int8: Schedule.bracket_reached of the base (0 = below the threshold or gate)
    "ytd_self_pay",   # fen: the pool's year-to-date self-pay after the claim
    "ytd_relief",     # fen: the pool's year-to-date relief after the claim
    "rule_set_id",
    "rule_version",
    "rule_hash",
)
#: Columns the batch adds after :data:`RESULT_FIELDS` for a rule book that uses the rules of
#: docs/calculation.md *Rules real schemes need* (``RuleBook.extended``), in this order; a
#: results file of any other rule book has none of them (docs/batch.md, *Output files*).
#: ``relief`` stays the claim's whole relief; ``second_relief`` is the part of it the second
#: stage paid.  ``caps`` lists the relief the claim counts in each cap pool its plan (or second
#: stage) lists, ``NAME=yuan`` joined by ``;`` (``medical=4640.00;household=4640.00``), so that
#: results open a later batch's cap pools (docs/batch.md, *Opening balances*).
EXTENDED_RESULT_FIELDS: Final = (
    "second_relief",      # fen: the second stage's relief (0 without one); part of relief
    "second_capped_by",   # the second stage's limit ("annual_cap", "cap:NAME", "claim_cap", "self_pay"); else null
    "second_pool",        # the second stage's pool; null without a second stage
    "burden",             # fen: b_k = s − r (+ non-compliant); null without a second stage
    "ytd_burden",         # fen: the second pool's year-to-date burden after the claim (B_k)
    "ytd_second_relief",  # fen: the second pool's year-to-date second relief after the claim (H_k)
    "caps",               # text: NAME=yuan;… the relief counted in each cap pool; null: none
)
#: Hex digits of the rule file's sha256 that each results row carries in ``rule_hash`` by
#: default (docs/batch.md, *Output files*): 12 hex digits (48 bits), as the desk prints it; the
#: run manifest beside the results file holds the full hash of every rule file, and
#: ``--full-rule-hash`` writes all 64 on every row.  Readers take either form (it is text).
RULE_HASH_SHORT: Final = 12


def rule_ref(content_hash: str, full: bool = False) -> str:
    """The ``rule_hash`` a results row carries for a rule file of sha256 ``content_hash``: its
    first :data:`RULE_HASH_SHORT` hex digits, or the whole hash when ``full``."""
    return content_hash if full else content_hash[:RULE_HASH_SHORT]


#: Result columns that are money (fen in frames, yuan with two decimals in files).
RESULT_MONEY_FIELDS: Final = ("relief", "patient_pays", "bracket_relief", "ytd_self_pay", "ytd_relief")
#: Columns of :data:`EXTENDED_RESULT_FIELDS` that are money.
EXTENDED_MONEY_FIELDS: Final = ("second_relief", "burden", "ytd_burden", "ytd_second_relief")

#: Money columns of results and recalculation files.
MONEY_COLUMNS: Final = frozenset(CLAIM_MONEY_FIELDS + RESULT_MONEY_FIELDS + EXTENDED_MONEY_FIELDS) | {
    "old_relief", "new_relief", "adjustment", "old_second_relief", "new_second_relief",
}

#: Chinese names of the columns medaid writes (claim and result fields, recalculation and
#: rejects columns): the header cells of CSV and XLSX files written with ``--lang zh``, the
#: column names in the Chinese report's formulas.  Every reader of results accepts them back
#: (:func:`result_field`).  Machine formats (JSON Lines, Parquet) always carry the field names.
ZH_HEADERS: Final[dict[str, str]] = {
    "claim_id": "结算单号", "person_id": "人员编号", "date": "结算日期", "self_pay": "合规自付费用",
    "group": "救助对象类别", "kind": "就诊类型", "hospital": "医疗机构", "total_cost": "医疗总费用",
    "major_disease": "是否大病", "channel": "结算方式", "household_id": "户号", "non_compliant": "非合规费用",
    "plan": "救助方案", "pool": "累计池", "benefit_year": "救助年度", "relief": "救助金额",
    "patient_pays": "个人负担", "bracket_relief": "分段救助金额", "capped_by": "限额原因",
    "bracket": "最高分段", "ytd_self_pay": "年度累计自付", "ytd_relief": "年度累计救助",
    "rule_set_id": "规则编号", "rule_version": "规则版本", "rule_hash": "规则哈希",
    "second_relief": "倾斜救助金额", "second_capped_by": "倾斜救助限额原因", "second_pool": "倾斜救助累计池",
    "burden": "剩余负担", "ytd_burden": "年度累计剩余负担", "ytd_second_relief": "年度累计倾斜救助",
    "caps": "共用限额",
    # recalculations (``medaid recalc -o``)
    "old_relief": "原救助金额", "new_relief": "新救助金额", "adjustment": "调整金额", "status": "状态",
    "old_second_relief": "原倾斜救助金额", "new_second_relief": "新倾斜救助金额",
    # rejects
    "line": "行号", "field": "字段", "reason": "原因",
}


def header(field: str, lang: str = "en") -> str:
    """The header a written file gives ``field``: the field name, or its Chinese name under
    ``lang="zh"`` (a column medaid does not name keeps its own header)."""
    return ZH_HEADERS.get(field, field) if lang == "zh" else field


def result_field(name: str) -> str | None:
    """The field a results file's header names: a field name, a Chinese header of
    :data:`ZH_HEADERS` or an alias of :data:`HEADER_ALIASES` (:func:`normalise_header`, as
    claim files' headers); ``None`` for a column medaid does not know."""
    return _RESULT_INDEX.get(normalise_header(name))


_RESULT_INDEX: Final[dict[str, str]] = {
    **ALIAS_INDEX,
    **{f: f for f in (*CLAIM_FIELDS, *RESULT_FIELDS, *EXTENDED_RESULT_FIELDS, *ZH_HEADERS)},
    **{normalise_header(zh): f for f, zh in ZH_HEADERS.items()},
}


#: Optional claim fields of an application file (``medaid batch --record``, docs/batch.md
#: *Recording in the ledger*): accepted headers of each.  They are not among
#: :data:`HEADER_ALIASES`: a file's such column passes through to the results under its own
#: header (a bank account masked, :data:`ACCOUNT_FIELD`), and is read into the claim.
CLAIM_EXTRA_HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "channel": ("channel", "结算方式", "渠道", "结算渠道", "救助渠道"),
    "bank_account": ("bank_account", "bank account", "银行账号", "银行卡号", "银行账户"),
    "account_name": ("account_name", "account name", "户名", "开户名", "账户名称"),
}
#: The field whose column is masked wherever a file or message shows it.
ACCOUNT_FIELD: Final = "bank_account"
#: The payee fields whose columns every results and rejects file shows masked (the account and
#: its holder's name, docs/periods.md#personal-data).
MASKED_FIELDS: Final = (ACCOUNT_FIELD, "account_name")


def chosen_columns(requested: str | list[str] | tuple[str, ...], available: list[str] | tuple[str, ...],
                   ) -> list[str]:
    """The output columns ``--columns`` asks for (``"claim_id,relief"``, or a list), in the order
    asked, each one of ``available`` (the columns the results file would have: the input's
    columns, then :data:`RESULT_FIELDS`).  Raises ``ValueError`` with a message naming the
    unknown or repeated names and listing the allowed ones; an empty list is refused too."""
    names = [n.strip() for n in (requested.split(",") if isinstance(requested, str) else requested)]
    names = [n for n in names if n]
    allowed = ", ".join(available)
    if not names:
        raise ValueError(f"no column named; choose from: {allowed}")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(unknown)}; choose from: {allowed}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"column(s) named twice: {', '.join(twice)}")
    return names
