"""The README's and docs' examples run, and print what the docs say they print.

Every fenced block of README.md and docs/*.md is read (as sqlite-utils tests its docs), so an
example cannot rot unnoticed:

* ```sh / ```bash blocks are run with ``bash -e -o pipefail``; they must exit 0, or the code
  a ``<!-- expect-exit: N -->`` line right before the block states;
* ```python blocks are run by the venv's python;
* ```console blocks are sessions: each ``$ `` line (with its ``\\`` continuation lines) is run
  and the lines after it, up to the next ``$ ``, are its output (stdout and stderr), compared
  line by line.  In the expected output ``...`` or ``…`` matches any text within a line, and a
  line of only ``...`` / ``…`` matches any number of lines; ISO timestamps are compared as
  ``<time>``.  ``$ echo $?`` prints the previous command's exit code; any other command that
  exits non-zero must be followed by it;
* ```text, ```toml, ```json, ```diff … are shown, not run (output, file contents);
* a block preceded by ``<!-- not-run: reason -->`` is not run (a reason is required); a block
  without a language is an error (say ``text`` for output).

The blocks of one file run in order in one scratch folder that holds a copy of the repository's
``src/``, ``rules/``, ``examples/``, ``benchmarks/``, ``Makefile`` and ``pyproject.toml`` and a ``.venv``
whose ``bin`` is the running interpreter's (so ``make demo`` and ``.venv/bin/python`` work
without installing anything); ``medaid`` and ``python`` on PATH are that venv's and import the
copied code under test (``PYTHONPATH``).  Commands named in the docs' tables and synopses must exist,
with every option they name (checked against ``--help``).

The command README.md gives for the whole suite is the one ``.ci/run`` runs, ``make test``, and it
runs the gates (ruff, then mypy) before the suite; a gate that fails stops it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import medaid

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(medaid.__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

RUN = {"sh", "bash", "python", "console"}
SHOWN = {"text", "toml", "json", "diff", "csv", "ini", "yaml", "sql"}
TIMEOUT = 120


@dataclass
class Block:
    path: Path
    line: int                      # the line of the opening fence, from 1
    lang: str
    body: str
    not_run: str | None = None     # the reason, when marked not-run
    expect_exit: int = 0
    directives: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*([a-z-]+)\s*(?::\s*(.*?))?\s*-->$")


def _closes(line: str, fence: str) -> bool:
    s = line.strip()
    return len(s) >= len(fence) and s == fence[0] * len(s)


def blocks_of(path: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a Markdown file, with the directives on the lines right before."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not _closes(lines[i], fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        b = Block(path, start + 1, lang, "\n".join(body) + "\n")
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        while j >= 0 and (d := DIRECTIVE.match(lines[j].strip())):
            b.directives.append(lines[j].strip())
            name, arg = d.group(1), (d.group(2) or "")
            if name == "not-run":
                b.not_run = arg
            elif name == "expect-exit":
                b.expect_exit = int(arg) if arg.isdigit() else -1
            j -= 1
        out.append(b)
    return out


ALL_BLOCKS = [b for p in DOCS for b in blocks_of(p)]


# --------------------------------------------------------------------------- the convention

def test_docs_are_found():
    assert ROOT / "README.md" in DOCS and len(DOCS) >= 7
    assert sum(b.lang in RUN and b.not_run is None for b in ALL_BLOCKS) >= 20


def test_every_block_says_what_it_is():
    bad = [f"{b.where}: a fenced block without a language (```text for output, ```sh to run)"
           for b in ALL_BLOCKS if not b.lang]
    bad += [f"{b.where}: unknown block language {b.lang!r} (run: {sorted(RUN)}; shown: {sorted(SHOWN)})"
            for b in ALL_BLOCKS if b.lang and b.lang not in RUN | SHOWN]
    assert not bad, "\n".join(bad)


def test_directives_are_well_formed():
    bad = []
    for b in ALL_BLOCKS:
        for d in b.directives:
            m = DIRECTIVE.match(d)
            assert m
            name, arg = m.group(1), (m.group(2) or "").strip()
            if name == "not-run" and len(arg) < 5:
                bad.append(f"{b.where}: {d}: say why the block is not run")
            elif name == "expect-exit" and not arg.isdigit():
                bad.append(f"{b.where}: {d}: expect-exit needs an exit code")
            elif name not in ("not-run", "expect-exit"):
                bad.append(f"{b.where}: {d}: unknown directive (not-run, expect-exit)")
            if b.lang not in RUN:
                bad.append(f"{b.where}: {d} on a ```{b.lang} block, which is never run")
    assert not bad, "\n".join(bad)


def test_the_parser_reads_directives_and_languages(tmp_path):
    md = ("x\n\n<!-- not-run: needs a cluster -->\n```sh\nspark-submit x\n```\n\n"
          "<!-- expect-exit: 1 -->\n```sh\nfalse\n```\n```\nraw\n```\n"
          "````text\n```\nnested\n```\n````\n")
    bs = blocks_of(tmp_path / "x.md", md)
    assert [(b.lang, b.not_run, b.expect_exit, b.line) for b in bs] == [
        ("sh", "needs a cluster", 0, 4), ("sh", None, 1, 9), ("", None, 0, 12), ("text", None, 0, 15)]
    assert bs[3].body == "```\nnested\n```\n"


# --------------------------------------------------------------------------- running blocks

def scratch(tmp: Path) -> Path:
    """A copy of what the docs' commands use, and a .venv that is the running interpreter's."""
    for d in ("rules", "examples", "benchmarks"):
        shutil.copytree(ROOT / d, tmp / d, ignore=shutil.ignore_patterns("data", "__pycache__"))
    shutil.copytree(SRC, tmp / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for f in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, tmp / f)
    venv = tmp / ".venv"
    venv.mkdir()
    (venv / "bin").symlink_to(BIN)
    if sys.prefix != sys.base_prefix:                 # a venv: its python finds its packages by
        prefix = Path(sys.prefix)                     # the pyvenv.cfg and lib/ next to bin/
        shutil.copy(prefix / "pyvenv.cfg", venv / "pyvenv.cfg")
        (venv / "lib").symlink_to(prefix / "lib")
    for stamp in (".stamp-base", ".stamp-test", ".stamp-service"):  # installed already: make installs nothing
        (venv / stamp).touch()
    return tmp


def env_for(home: Path, repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDAID_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(repo / "src"), HOME=str(home),
               VIRTUAL_ENV=str(BIN.parent), PYTHONDONTWRITEBYTECODE="1", COLUMNS="200",
               LC_ALL="C.UTF-8", LANG="C.UTF-8", PYTHONIOENCODING="utf-8", TZ="UTC")
    env.pop("PYTHONSTARTUP", None)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run in a session of its own, so that a timeout ends everything the block started."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace",
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return -1, f"(timed out after {TIMEOUT} s)"
    return p.returncode, out


TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")
ELLIPSIS = re.compile(r"\.\.\.|…")


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = ELLIPSIS.split(TIME.sub("<time>", expected.rstrip()))
    return re.compile(".*".join(re.escape(p) for p in parts) + r"\Z")


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` (with ``...`` wildcards) matches all of ``actual``."""
    actual = [TIME.sub("<time>", a.rstrip()) for a in actual]
    while actual and not actual[-1]:
        actual.pop()
    expected = list(expected)
    while expected and not expected[-1].strip():
        expected.pop()

    memo: dict[tuple[int, int], bool] = {}

    def m(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[i, j]
        if i == len(expected):
            r = j == len(actual)
        elif expected[i].strip() in ("...", "…"):
            r = any(m(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            r = j < len(actual) and bool(_line_pattern(expected[i]).match(actual[j])) and m(i + 1, j + 1)
        memo[i, j] = r
        return r

    return m(0, 0)


def test_output_matching_rules():
    assert output_matches(["a ... c", "..."], ["a b c", "x", "y"])
    assert output_matches(["at 2026-11-28T18:09:40.857+00:00."], ["at 2024-01-01T00:00:00+00:00."])
    assert not output_matches(["a", "b"], ["a", "c"])
    assert not output_matches(["a"], ["a", "extra"])             # the doc must show all of it
    assert output_matches(["…", "last"], ["1", "2", "last", ""])


def session(block: Block) -> list[tuple[str, list[str]]]:
    """The (command, expected output lines) of a console block."""
    steps: list[tuple[str, list[str]]] = []
    lines = block.body.splitlines()
    k = 0
    while k < len(lines):
        if not lines[k].startswith("$ "):
            raise AssertionError(f"{block.where}: console block: output before the first `$ ` command")
        cmd = [lines[k][2:]]
        while cmd[-1].endswith("\\") and k + 1 < len(lines):
            k += 1
            cmd.append(lines[k])
        k += 1
        out = []
        while k < len(lines) and not lines[k].startswith("$ "):
            out.append(lines[k])
            k += 1
        steps.append(("\n".join(cmd), out))
    return steps


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> list[str]:
    """The block's failures, as messages naming the block."""
    if re.search(r"\bpip3?\b[^\n]*\binstall\b|-m venv\b", block.body):
        return [f"{block.where}: a block that installs packages or makes a venv must be marked "
                "<!-- not-run: reason --> (the test must not change the environment it runs in)"]
    if block.lang in ("sh", "bash"):
        rc, out = run(["bash", "-e", "-o", "pipefail", "-c", block.body], cwd, env)
        if rc != block.expect_exit:
            return [f"{block.where}: ```{block.lang} block exited {rc}, expected {block.expect_exit}:\n"
                    f"{block.body}--- output:\n{out[-3000:]}"]
        return []
    if block.lang == "python":
        rc, out = run([str(BIN / "python"), "-c", block.body], cwd, env)
        if rc != block.expect_exit:
            return [f"{block.where}: ```python block exited {rc}:\n{block.body}--- output:\n{out[-3000:]}"]
        return []
    problems = []
    last_rc = 0
    for cmd, expected in session(block):
        if cmd.strip() == "echo $?":
            rc, out = 0, f"{last_rc}\n"
        else:
            rc, out = run(["bash", "-o", "pipefail", "-c", cmd], cwd, env)
        if not output_matches(expected, out.splitlines()):
            problems.append(f"{block.where}: `$ {cmd}` printed (exit {rc}):\n{out}--- the doc shows:\n"
                            + "\n".join(expected))
        if rc != 0 and cmd.strip() != "echo $?":
            idx = [c for c, _ in session(block)].index(cmd)
            following = session(block)[idx + 1:idx + 2]
            if not following or following[0][0].strip() != "echo $?":
                problems.append(f"{block.where}: `$ {cmd}` exited {rc}; show it with `$ echo $?`")
        last_rc = rc
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_blocks_run(doc: Path, tmp_path: Path):
    cwd = scratch(tmp_path / "repo")
    env = env_for(tmp_path, cwd)
    problems: list[str] = []
    for block in blocks_of(doc):
        if block.lang in RUN and block.not_run is None:
            problems += run_block(block, cwd, env)
    assert not problems, "\n\n".join(problems)


def test_a_broken_block_is_caught(tmp_path: Path):
    cwd = scratch(tmp_path / "repo")
    env = env_for(tmp_path, cwd)
    md = tmp_path / "broken.md"
    md.write_text(
        "```sh\nmedaid quote --person P --self-pay 30000 --date 2024-05-03 --ytd-self-pay 0 --ytd-relief 0 "
        "--no-such-option\n```\n"
        "```python\nimport medaid\nassert medaid.parse_yuan('1') == 99\n```\n"
        "```console\n$ medaid quote --person P --self-pay 30000 --date 2024-05-03 --ytd-self-pay 0 --ytd-relief 0 "
        "--json | grep '^  \"relief\"'\n"
        "  \"relief\": \"23300.01\",\n```\n"
        "<!-- expect-exit: 1 -->\n```sh\nmedaid rules check rules\n```\n"
        "```sh\npip install 'medaid[spark]'\n```\n"
        "```console\n$ medaid rules check no-such-folder\n...\n```\n", encoding="utf-8")
    failures = [p for b in blocks_of(md) for p in run_block(b, cwd, env)]
    assert len(failures) == 6, "\n\n".join(failures)
    assert "exited 2, expected 0" in failures[0]
    assert "```python block exited 1" in failures[1]
    assert '"relief": "23300.00"' in failures[2]
    assert "exited 0, expected 1" in failures[3]
    assert "must be marked <!-- not-run" in failures[4]
    assert "show it with `$ echo $?`" in failures[5]


# --------------------------------------------------------------------------- commands named in prose

CODE_SPAN = re.compile(r"`(medaid [^`]+)`")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def named_commands() -> list[tuple[str, str]]:
    """(where, command line) for every `medaid …` in a table cell, every synopsis line (```text)
    and every command of a block that is not run."""
    out = []
    for path in DOCS:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("|"):
                out += [(f"{path.relative_to(ROOT)}:{n}", m) for m in CODE_SPAN.findall(line)]
    for b in ALL_BLOCKS:
        if b.lang == "text":
            cont = None
            for k, line in enumerate(b.body.splitlines()):
                if re.match(r"^(medaid|python -m medaid\.spark) [a-z\[A-Z-]", line):
                    cont = [f"{b.where}+{k + 1}", line]
                    out.append(cont)           # type: ignore[arg-type]
                elif cont is not None and line.startswith(" ") and line.strip().startswith("["):
                    cont[1] += " " + line.strip()
                else:
                    cont = None
    for b in ALL_BLOCKS:                       # commands in blocks that are not run
        if b.lang in ("sh", "bash") and b.not_run is not None:
            for k, line in enumerate(b.body.replace("\\\n", " ").splitlines()):
                if line.startswith("medaid "):
                    out.append([f"{b.where}+{k + 1}", line.split("  #")[0]])
    return [tuple(x) for x in out]             # type: ignore[misc]


def subcommand(line: str) -> list[str]:
    words = []
    for w in line.split()[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", w):
            break
        words.append(w)
    return words


def test_commands_named_in_tables_and_synopses_exist():
    from click.testing import CliRunner

    from medaid.cli import main

    named = named_commands()
    assert any("medaid settle" in c for _, c in named) and any("medaid batch" in c for _, c in named)
    helps: dict[tuple[str, ...], tuple[int, str]] = {}
    bad = []
    for where, line in named:
        if line.startswith("python -m medaid.spark"):
            continue
        words = tuple(subcommand(line))
        if words not in helps:
            r = CliRunner().invoke(main, [*words, "--help"])
            helps[words] = (r.exit_code, r.output)
        rc, text = helps[words]
        if rc != 0:
            bad.append(f"{where}: `{line}`: `medaid {' '.join(words)} --help` exits {rc}")
            continue
        missing = [o for o in OPTION.findall(line) if o not in text and o != "--help"]
        if missing:
            bad.append(f"{where}: `{line}`: no option {', '.join(missing)} in `medaid {' '.join(words)} --help`")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- the test command and its gates

def documented_test_command() -> str:
    """The command README.md's Development section gives for the whole suite ("what CI runs")."""
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start = text.index("\n## Development\n")
    end = text.find("\n## ", start + 1)
    first, last = text.count("\n", 0, start) + 2, text.count("\n", 0, end if end >= 0 else len(text)) + 1
    found = [line.split("#", 1)[0].strip()
             for b in ALL_BLOCKS if b.path == readme and first <= b.line <= last and b.lang in ("sh", "bash")
             for line in b.body.splitlines() if "what CI runs" in line]
    assert len(found) == 1, f"README.md, Development: one command marked 'what CI runs', found {found}"
    return found[0]


def test_the_documented_test_command_is_what_ci_runs():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert documented_test_command() == "make test"
    assert ci[-1] == "make test", f".ci/run must end by running the documented `make test`, not {ci[-1]!r}"
    assert not [c for c in ci if re.search(r"\b(pytest|ruff|mypy)\b", c)], (
        ".ci/run runs the suite and the gates only through `make test`")


@pytest.fixture(scope="module")
def make_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("make")
    cwd = scratch(home / "repo")
    return cwd, env_for(home, cwd)


def test_make_test_runs_ruff_then_mypy_then_the_suite(make_repo):
    """`make -n test` (what make would run, nothing run): both gates, on the whole tree, before pytest."""
    cwd, env = make_repo
    rc, out = run(["make", "-n", "test"], cwd, env)
    assert rc == 0, out
    commands = [line for line in out.splitlines() if not line.strip().startswith("echo")]

    def first(pattern: str) -> int:
        at = [i for i, line in enumerate(commands) if re.search(pattern, line)]
        assert at, f"`make test` runs no {pattern!r}:\n{out}"
        return at[0]

    ruff = first(r"\bruff check src tests benchmarks examples\b")
    mypy = first(r"\bmypy src/medaid\b")
    suite = first(r"-m pytest\b")
    assert ruff < mypy < suite, out


@pytest.mark.parametrize("ruff, mypy, failed", [
    ("false", "true", "ruff"), ("true", "false", "mypy"), ("false", "false", "ruff mypy"), ("true", "true", None)])
def test_a_failing_gate_fails_make_test_before_the_suite(make_repo, ruff, mypy, failed):
    cwd, env = make_repo
    rc, out = run(["make", "test", f"RUFF={ruff}", f"MYPY={mypy}", "PYTEST=echo the suite ran"], cwd, env)
    if failed is None:
        assert rc == 0 and "the suite ran" in out, out
    else:
        assert rc != 0 and "the suite ran" not in out, out
        assert f"make: gate failed: {failed} (findings above" in out, out


def test_no_link_leaves_the_repository():
    """The docs link only to files the repository has (a clone has nothing beside it)."""
    link = re.compile(r"\]\(([^)\s]+)\)")
    bad = []
    for path in DOCS:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for target in link.findall(line):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue
                file = (path.parent / target.split("#")[0]).resolve()
                if not file.is_relative_to(ROOT) or not file.exists():
                    bad.append(f"{path.relative_to(ROOT)}:{n}: link to {target}, not a file of the repository")
    assert not bad, "\n".join(bad)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"[`*_]", "", m.group(1)).strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return out


def test_links_to_sections_find_their_heading():
    link = re.compile(r"\]\(([^)\s]*)#([^)\s]+)\)")
    bad = []
    for path in DOCS:
        in_code = False
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line):
                in_code = not in_code
            if in_code:
                continue
            for target, anchor in link.findall(line):
                file = (path.parent / target).resolve() if target else path
                if file.suffix == ".md" and file.exists() and anchor not in anchors(file):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: no heading for #{anchor} in {file.name}")
    assert not bad, "\n".join(bad)


def test_the_code_cites_the_repositorys_own_specification():
    """Docstrings and docs cite docs/calculation.md, not a design file a clone does not have."""
    bad = []
    for path in [*DOCS, *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "DESIGN.md" in line or "shared/" in line:
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_the_worked_examples_table_is_what_the_engine_gives():
    """docs/calculation.md's table of single claims under the shipped plan, row by row.

    The by-hand column is the doc's own arithmetic; here each stated relief is also checked
    against the engine (the hand arithmetic is repeated in tests/test_worked_examples.py)."""
    text = (ROOT / "docs" / "calculation.md").read_text(encoding="utf-8")
    section = text.split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([\d,]+\.\d\d) \| [^|]+ \| ([\d,]+\.\d\d) \|$", section, flags=re.M)
    assert len(rows) == 8, rows
    book = medaid.load_rules(ROOT / "rules")
    for self_pay, relief in rows:
        claim = medaid.Claim.from_yuan(claim_id="C", person_id="P", date="2024-05-03",
                                       self_pay=self_pay, group="key", kind="inpatient")
        assert medaid.format_yuan(medaid.quote(claim, book).relief) == relief, self_pay
