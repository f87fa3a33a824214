"""A period's payment lists as files (docs/periods.md#the-lists): CSV and XLSX with Chinese
headers, written atomically by the project's writer (:func:`medaid.io.writers.write_frame`:
temporary file, fsync, rename; ``0600``).

* ``YYYY-MM-hospitals`` — 拨付清单: per hospital, its ``one-stop`` settlements, reversals and
  adjustments of the period and the net to pay it (拨付金额).
* ``YYYY-MM-bank`` — 银行兑付清单: per person and bank account, the ``application`` relief to pay
  (兑付金额), with the **full** account and name: the one file that holds them unmasked.
* ``YYYY-MM-summary`` — 汇总: per channel and in all, the same columns; its 合计 equals the sum of
  the two lists, and the sum of what the period's ledger rows move (reconciled to the fen before
  anything is written).

A negative net is owed back by the payee (a reversal or a lowering adjustment larger than the
period's new relief).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..errors import Problem
from ..io.writers import write_frame
from .backend import LedgerError
from .periods import APPLICATION, ONE_STOP, Line, PeriodLists
from .schema import moves

#: The columns of the lists and their Chinese headers, in order.
HEADERS: dict[str, str] = {
    "period": "清算期", "channel": "支付渠道", "hospital": "医疗机构", "person_id": "人员编号",
    "account_name": "户名", "bank_account": "银行账号",
    "settlements": "结算笔数", "settled": "结算救助金额", "reversals": "冲正笔数", "reversed": "冲正金额",
    "adjustments": "调整笔数", "adjusted": "调整金额", "net": "应付金额",
}
MONEY = ["settled", "reversed", "adjusted", "net"]
#: The channel's words in the summary.
CHANNEL_ZH = {ONE_STOP: "一站式结算（拨付医疗机构）", APPLICATION: "事后申请（银行兑付）", "": "合计"}
#: The files' names (before the extension) and the net's header in each.
LISTS = {"hospitals": "拨付金额", "bank": "兑付金额", "summary": "应付金额"}
FORMATS = {"csv": ("csv",), "xlsx": ("xlsx",), "both": ("csv", "xlsx")}

_COUNTS = ["settlements", "settled", "reversals", "reversed", "adjustments", "adjusted", "net"]


def _frame(period: str, lines: list[Line], first: list[str]) -> pl.DataFrame:
    data: dict[str, list[object]] = {"period": [period] * len(lines)}
    for c in first:
        data[c] = [CHANNEL_ZH[x.channel] if c == "channel" else getattr(x, c) for x in lines]
    for c in _COUNTS:
        data[c] = [getattr(x, c) for x in lines]
    schema = {c: (pl.Int64 if c in _COUNTS else pl.String) for c in data}
    return pl.DataFrame(data, schema=schema)


def frames(lists: PeriodLists) -> dict[str, pl.DataFrame]:
    """The three lists of a period as frames (money in fen), after checking that they
    reconcile: the summary's total is the sum of the two lists and of what the rows move."""
    p = lists.period
    total = lists.total()
    moved = sum(moves(e)[1] for e in lists.rows)
    if total.net != moved or total.net != lists.total(ONE_STOP).net + lists.total(APPLICATION).net:
        raise LedgerError(Problem(  # not expected: the lines are sums of those rows
            f"the lists of period {p} do not reconcile with its ledger rows; nothing was written",
            source=f"period {p}"))
    summary = [lists.total(ONE_STOP), lists.total(APPLICATION), total]
    return {
        "hospitals": _frame(p, list(lists.hospitals), ["hospital"]),
        "bank": _frame(p, list(lists.persons), ["person_id", "account_name", "bank_account"]),
        "summary": _frame(p, summary, ["channel"]),
    }


def write_lists(lists: PeriodLists, folder: str | Path, fmt: str = "both") -> list[Path]:
    """Write the period's lists into ``folder`` (which must exist) as ``csv``, ``xlsx`` or
    ``both``; the paths written.  Raises :class:`medaid.io.writers.WriteError` naming a file
    that cannot be written; the lists written before it are then removed: a payment is made
    from the whole set or not at all."""
    folder = Path(folder)
    out: list[Path] = []
    try:
        for name, df in frames(lists).items():
            headers = {**HEADERS, "net": LISTS[name]}
            for ext in FORMATS[fmt]:
                path = folder / f"{lists.period}-{name}.{ext}"
                write_frame(df, path, headers=headers, money=MONEY)
                out.append(path)
    except BaseException:
        for path in out:
            path.unlink(missing_ok=True)
        raise
    return out
