"""One reader of results files, and the encoding and disk-space failures of reading (issue #11,
defects 11 and 22).

``medaid report`` and ``medaid recalc --previous`` read results files through the same reader
(:func:`medaid.io.results.load_results`; :func:`medaid.io.readers.read_results` is that reader
keeping every column), so a file one accepts the other accepts: a results CSV saved as GBK by
Chinese Excel, text neutralised against formula injection, Chinese headers.  A JSON Lines file
that is not UTF-8, and a GBK claim file whose temporary UTF-8 copy does not fit on the disk,
end with a message naming the file and exit status 1, never a traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.io.readers import read_results
from medaid.io.results import ResultsError, load_results

ROOT = Path(__file__).resolve().parents[1]
R = str(ROOT / "rules" / "chongqing-county-2019.toml")
CLAIMS = ("结算单号,人员编号,结算日期,合规自付费用,救助对象类别,就诊类型,医疗机构\n"
          "C1,P1,2019-05-03,30000,key,inpatient,县人民医院\n"
          "C2,P2,2019-06-03,10000,key,inpatient,县人民医院\n")


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def results_as_gbk(tmp_path: Path) -> tuple[Path, Path]:
    """Claims, and their results re-saved as GBK (as Chinese Excel saves a CSV)."""
    claims = tmp_path / "claims.csv"
    claims.write_text(CLAIMS, encoding="utf-8")
    out = tmp_path / "results.csv"
    code, _, err = run("batch", str(claims), "-o", str(out), "--rules", R)
    assert code == 0, err
    gbk = tmp_path / "results-gbk.csv"
    gbk.write_bytes(out.read_text(encoding="utf-8-sig").encode("gbk"))
    return claims, gbk


def test_recalc_reads_a_gbk_results_file_that_report_reads(tmp_path: Path) -> None:
    claims, gbk = results_as_gbk(tmp_path)
    code, stdout, err = run("report", str(gbk))
    assert code == 0, err
    adj = tmp_path / "adj.csv"
    code, stdout, err = run("recalc", str(claims), "--previous", str(gbk), "--rules", R, "-o", str(adj))
    assert code == 0, err
    # the same rules: 30,000 yuan is relieved 23,300 and 10,000 yuan 6,300, before and after
    back = read_results(adj)
    assert back["old_relief"].to_list() == [2_330_000, 630_000]
    assert back["adjustment"].to_list() == [0, 0]
    assert back["hospital"].to_list() == ["县人民医院", "县人民医院"]


def test_report_and_recalc_read_every_results_format_alike(tmp_path: Path) -> None:
    claims = tmp_path / "claims.csv"
    claims.write_text(CLAIMS.replace("县人民医院", "=HYPERLINK(1)"), encoding="utf-8")
    for ext in ("csv", "xlsx", "jsonl", "parquet"):
        out = tmp_path / f"r.{ext}"
        assert run("batch", str(claims), "-o", str(out), "--rules", R)[0] == 0
        report, recalc = load_results(out), read_results(out)
        for c in report.columns:
            assert report[c].to_list() == recalc[c].to_list(), (ext, c)
        # text neutralised against formulas in CSV and XLSX is read back as it was
        assert report["hospital"].to_list() == ["=HYPERLINK(1)"] * 2, ext


def test_adjustments_read_back_keep_their_sign(tmp_path: Path) -> None:
    p = tmp_path / "adj.csv"
    p.write_text("claim_id,person_id,hospital,old_relief,new_relief,adjustment,status\n"
                 "C1,P1,H,23300.00,23287.95,-12.05,changed\n", encoding="utf-8")
    back = read_results(p)
    # 23,287.95 − 23,300.00 = −12.05 yuan = −1,205 fen
    assert back.select("old_relief", "new_relief", "adjustment").row(0) == (2_330_000, 2_328_795, -1_205)
    p.write_text(p.read_text().replace("23287.95", "-1.00"), encoding="utf-8")
    with pytest.raises(ResultsError, match=r"adj\.csv:2: new_relief: must not be negative"):
        read_results(p)


def test_recalc_names_the_columns_a_previous_file_lacks(tmp_path: Path) -> None:
    claims = tmp_path / "claims.csv"
    claims.write_text(CLAIMS, encoding="utf-8")
    prev = tmp_path / "prev.csv"
    prev.write_text("claim_id,date,self_pay\nC1,2019-05-03,30000\n", encoding="utf-8")
    code, _, err = run("recalc", str(claims), "--previous", str(prev), "--rules", R)
    assert code == 1 and "Traceback" not in err
    assert f"{prev}:1: not a results file: missing column(s) person_id, relief" in err


def test_a_results_csv_utf8_at_first_and_gbk_further_down_is_read(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    ascii_rows = "".join(f"C{i},P{i},2019-05-03,{i}.00\n" for i in range(5000))  # over 64 KiB
    p.write_bytes(("claim_id,person_id,date,relief,hospital\n".replace(",hospital", "")
                   + ascii_rows).encode() + "C县,P县,2019-05-03,1.00\n".encode("gbk"))
    assert load_results(p)["claim_id"].to_list()[-1] == "C县"


def test_a_results_header_in_full_width_letters_is_read_as_a_claim_files_header_is(tmp_path: Path) -> None:
    # one header normalisation (NFKC, trimmed, case-folded) for claim files and results files:
    # ｒｅｌｉｅｆ typed with a Chinese input method's full-width letters is the relief column
    p = tmp_path / "r.csv"
    p.write_text("claim_id,person_id,date,ｒｅｌｉｅｆ\nC1,P1,2019-05-03,23300.00\n", encoding="utf-8")
    assert load_results(p).select("claim_id", "relief").row(0) == ("C1", 2_330_000)  # 23,300.00 yuan


# --------------------------------------------------------------------------------------------
# JSON Lines that is not UTF-8


def test_json_lines_in_gbk_are_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_bytes('{"claim_id": "C1", "person_id": "P1", "date": "2019-05-03", "self_pay": "30000"}\n'
                  '{"claim_id": "C2", "person_id": "P2", "date": "2019-05-03", "self_pay": "30000", '
                  '"hospital": "县人民医院"}\n'.encode("gbk"))
    code, _, err = run("batch", str(p), "-o", str(tmp_path / "r.csv"), "--rules", R)
    assert code == 1 and "Traceback" not in err
    assert f"{p}:2: is not UTF-8" in err and "JSON Lines files must be UTF-8" in err
    assert not (tmp_path / "r.csv").exists()
    r = tmp_path / "r.jsonl"  # a results file, read by report
    r.write_bytes('{"claim_id": "C1", "person_id": "P1", "date": "2019-05-03", "relief": "1.00", '
                  '"hospital": "县人民医院"}\n'.encode("gbk"))
    code, _, err = run("report", str(r))
    assert code == 1 and f"{r}:1: is not UTF-8" in err


# --------------------------------------------------------------------------------------------
# the GBK file's temporary copy on a full disk


def gbk_claims(tmp_path: Path, rows: int = 2) -> Path:
    p = tmp_path / "gbk.csv"
    body = "".join(f"C{i},P{i},2019-05-03,30000,key,inpatient,县人民医院\n" for i in range(rows))
    p.write_bytes((CLAIMS.splitlines()[0] + "\n" + body).encode("gbk"))
    return p


def test_a_full_disk_for_the_utf8_copy_refuses_the_run_cleanly(tmp_path: Path, monkeypatch) -> None:
    src = gbk_claims(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fdopen(fd, mode="r", *a, **k):
        f = real_fdopen(fd, mode, *a, **k)
        return FullDisk(f) if "w" in mode else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    code, _, err = run("batch", str(src), "-o", str(tmp_path / "r.csv"), "--rules", R)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert code == 1 and "Traceback" not in err
    assert f"{src}: is not UTF-8, and its temporary UTF-8 copy cannot be written in {temp}" in err
    assert "No space left on device" in err and "TMPDIR" in err
    assert list(temp.iterdir()) == []  # the partial copy is removed
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"),
                    reason="mounting a small tmpfs needs root on Linux")
def test_on_a_real_full_disk_the_batch_exits_1_with_the_message(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = gbk_claims(tmp_path, rows=4000)  # about 200 KiB: more than the 64 KiB disk
        env = {**os.environ, "TMPDIR": str(small), "PYTHONPATH": str(ROOT / "src")}
        p = subprocess.run([sys.executable, "-m", "medaid.cli", "batch", str(src), "-o",
                            str(tmp_path / "r.csv"), "--rules", R],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert "temporary UTF-8 copy cannot be written" in p.stderr
        assert "No space left on device" in p.stderr
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
