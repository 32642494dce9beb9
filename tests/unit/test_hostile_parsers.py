"""Device output cannot freeze the agent: every CLI parser is linear in its input.

Three proofs, none with an absolute time limit (they would flake on a loaded machine):

- a static scan of every compiled pattern in agent/probes for the shapes that backtrack
  super-linearly (nested unbounded repeats, adjacent unbounded repeats over common characters, a
  pattern that starts with an unbounded repeat and so retries every suffix under ``search``);
- every pattern timed on long runs of one character at length n and 4n: linear grows 4 times,
  the old pager pattern 16 times (a 20k-dash line took 5.8 s, 80k 59 s);
- every SSH parser timed on recorded output repeated k and 4k times, on megabyte lines and on
  a megabyte of long adversarial lines, compared with ``str.split`` over the same text.
"""

from __future__ import annotations

import gc
import importlib
import json
import pkgutil
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest

import agent.probes
from agent.probes.ssh_parsers import model
from agent.probes.ssh_parsers.model import MAX_LINE_CHARS, MAX_OUTPUT_CHARS, ParseError
from agent.probes.wifi_parsers.base import WifiParseError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ssh"
PARSER_NAMES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
ALPHABET = " \t-_aAzZ0189:,.()%/\\x*#^<>=@中\u3000"
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
Tree = list[tuple[Any, Any]]


def _category(cat: Any, ch: str) -> bool:
    word = ch.isalnum() or ch == "_"
    return {sre.CATEGORY_DIGIT: ch.isdigit(), sre.CATEGORY_NOT_DIGIT: not ch.isdigit(),
            sre.CATEGORY_SPACE: ch.isspace(), sre.CATEGORY_NOT_SPACE: not ch.isspace(),
            sre.CATEGORY_WORD: word, sre.CATEGORY_NOT_WORD: not word}.get(cat, True)


def _matches(op: Any, av: Any, ch: str, icase: bool) -> bool:
    fold: Callable[[str], str] = str.lower if icase else str
    if op is sre.LITERAL:
        return fold(chr(av)) == fold(ch)
    if op is sre.NOT_LITERAL:
        return fold(chr(av)) != fold(ch)
    if op is sre.ANY:
        return ch != "\n"
    if op is sre.CATEGORY:
        return _category(av, ch)
    if op is sre.IN:
        negate, hit = False, False
        for o, a in av:
            if o is sre.NEGATE:
                negate = True
            elif o is sre.LITERAL:
                hit |= fold(chr(a)) == fold(ch)
            elif o is sre.RANGE:
                hit |= any(a[0] <= ord(c) <= a[1] for c in {ch, ch.lower(), ch.upper()})
            elif o is sre.CATEGORY:
                hit |= _category(a, ch)
        return hit != negate
    return False


def _charset(seq: Tree, icase: bool) -> set[str]:
    """The characters any one-character node in ``seq`` can match (a safe over-estimate)."""
    out: set[str] = set()
    for op, av in seq:
        if op in REPEATS:
            out |= _charset(av[2], icase)
        elif op is sre.SUBPATTERN:
            out |= _charset(av[3], icase)
        elif op is sre.BRANCH:
            for branch in av[1]:
                out |= _charset(branch, icase)
        else:
            out |= {ch for ch in ALPHABET if _matches(op, av, ch, icase)}
    return out


def _nullable(op: Any, av: Any) -> bool:
    if op in REPEATS:
        return bool(av[0] == 0)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return True
    if op is sre.SUBPATTERN:
        return all(_nullable(o, a) for o, a in av[3])
    if op is sre.BRANCH:
        return any(all(_nullable(o, a) for o, a in b) for b in av[1])
    return False


def _flat(seq: Tree) -> Tree:
    out: Tree = []
    for op, av in seq:
        out += _flat(list(av[3])) if op is sre.SUBPATTERN else [(op, av)]
    return out


def _unbounded(seq: Tree) -> bool:
    for op, av in seq:
        if op in REPEATS and (av[1] == sre.MAXREPEAT or _unbounded(list(av[2]))):
            return True
        if op is sre.SUBPATTERN and _unbounded(list(av[3])):
            return True
        if op is sre.BRANCH and any(_unbounded(list(b)) for b in av[1]):
            return True
    return False


def _leading_repeat(seq: Tree) -> bool:
    items = _flat(seq)
    if not items:
        return False
    op, av = items[0]
    if op is sre.BRANCH:
        return any(_leading_repeat(list(b)) for b in av[1])
    return op in REPEATS and av[1] == sre.MAXREPEAT


def _shape_problems(seq: Tree, icase: bool) -> list[str]:
    found = []
    items = _flat(seq)
    for i, (op, av) in enumerate(items):
        if op is sre.BRANCH:
            for branch in av[1]:
                found += _shape_problems(list(branch), icase)
        if op not in REPEATS:
            continue
        found += _shape_problems(list(av[2]), icase)
        if av[1] != sre.MAXREPEAT:
            continue
        if _unbounded(list(av[2])):
            found.append("nested unbounded repeats")
        mine = _charset(list(av[2]), icase)
        for op2, av2 in items[i + 1:]:
            if op2 in REPEATS and av2[1] == sre.MAXREPEAT and mine & _charset(list(av2[2]), icase):
                found.append("adjacent unbounded repeats over the same characters")
            if not _nullable(op2, av2):
                break
    return found


def shape_problems(pattern: re.Pattern[str]) -> list[str]:
    """Why ``pattern`` may backtrack super-linearly; empty when it cannot."""
    tree = list(sre_parse.parse(pattern.pattern, pattern.flags))
    found = _shape_problems(tree, bool(pattern.flags & re.I))
    if _leading_repeat(tree):
        found.append("starts with an unbounded repeat (every suffix retried under search)")
    return sorted(set(found))


def probe_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """Every compiled text pattern held by a module under agent/probes."""
    found = []
    for info in pkgutil.walk_packages(agent.probes.__path__, "agent.probes."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                found.append((f"{info.name}.{name}", value))
    return found


PATTERNS = probe_patterns()


@pytest.mark.parametrize("bad", [
    r"-{2,}\s*More\s*-{2,}|<--- More --->",  # the pager pattern of issue 18
    r"^(\S+) current state ?: ?(\S.*?)\s*$",  # two repeats competing for trailing spaces
    r"^(a+)+$", r"^\s*([^:]+?)\s*:",
])
def test_the_scan_finds_the_bad_shapes(bad: str) -> None:
    """The scan is not vacuous: the shapes that froze the agent are found."""
    assert shape_problems(re.compile(bad))


def test_no_parser_pattern_can_backtrack() -> None:
    """No pattern under agent/probes has a super-linear shape."""
    assert len(PATTERNS) > 60, "the scan found the parsers' patterns"
    bad = {name: shape_problems(p) for name, p in PATTERNS}
    assert {name: why for name, why in bad.items() if why} == {}


def _best(fn: Callable[[], object], runs: int = 3) -> float:
    """The fastest of a few runs, in this thread's CPU time: other processes on a loaded
    machine take the CPU away but do not add to it.  The garbage collector is off while timing
    (as timeit does): a full collection walks every live object, so 4 times the lines of
    output cost it more than 4 times, and one landing in the larger run read as 8.4 in CI."""
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            start = time.thread_time()
            fn()
            times.append(time.thread_time() - start)
    finally:
        if enabled:
            gc.enable()
    return min(times)


LINEAR = 8.0  # the growth a linear parser stays under (quadratic: 16)


def _growth(fn: Callable[[int], object], n: int) -> float:
    """time(4n) / time(n): about 4 when linear, 16 when quadratic; a floor keeps timer noise on
    tiny times from failing a test, the wide gap keeps a loaded machine from failing it."""
    floor = 2e-4

    def once() -> float:
        return max(_best(lambda: fn(4 * n)), floor) / max(_best(lambda: fn(n)), floor)
    # A linear parser passes the first time unless disturbed; a quadratic one never passes.
    first = once()
    return first if first < LINEAR else min(first, once(), once())



@pytest.mark.parametrize("char", ["-", " ", "a", "0", ":", "x is ", "- ", "中"])
def test_every_pattern_is_linear_on_long_runs(char: str) -> None:
    """A run of one character 4 times longer costs each pattern about 4 times, not 16."""
    worst = max(PATTERNS, key=lambda item: _best(lambda: item[1].search(char * 4000), 1))
    name, pattern = worst
    assert _growth(lambda n: pattern.search(char * n), 4000) < LINEAR, name


def _parse(name: str) -> Callable[[str], object]:
    module = importlib.import_module(f"agent.probes.ssh_parsers.{name}")
    parse: Callable[[str], object] = module.parse

    def run(text: str) -> object:
        try:
            return parse(text)
        except ParseError as exc:
            return exc
    return run


def _recorded(name: str) -> str:
    case = min(p for p in (FIXTURES / name).iterdir()
               if "error" not in json.loads((p / "expected.json").read_text()))
    return (case / "output.txt").read_text()


def _adversarial(length: int) -> dict[str, str]:
    line = MAX_LINE_CHARS - 10
    lines = max(1, length // line)
    return {
        "one line of dashes": "-" * length,
        "long lines of dashes": ("-" * line + "\n") * lines,
        "'more' then dashes": ("More " + "-" * (line - 5) + "\n") * lines,
        "spaces then a letter": ("GE0/0/1 current state : UP" + " " * (line - 30) + "x\n") * lines,
        "' is ' repeated": ("Gi0/1 is" + " is a" * (line // 5 - 2) + "\n") * lines,
        "newlines": "\n" * length,
    }


@pytest.mark.parametrize("name", PARSER_NAMES)
def test_parsers_linear_in_their_input(name: str) -> None:
    """Recorded output repeated 4k times costs about 4 times k times; hostile megabytes cost
    little more than splitting them into lines."""
    parse, text = _parse(name), _recorded(name)
    repeat = max(1, 400_000 // len(text))  # past the CPU caches at both sizes
    assert _growth(lambda n: parse(text * n), repeat) < LINEAR
    for what, hostile in _adversarial(2**20).items():
        baseline = max(_best(partial(str.split, hostile, "\n")), 1e-4)
        spent = _best(partial(parse, hostile), 1)
        # Reading a line through a few anchored patterns costs far more than a split, but a
        # constant factor; the quadratic pager pattern was ~10^6 times a split here.
        assert spent < 2000 * baseline, f"{what}: {spent:.3f}s vs split {baseline:.4f}s"


def test_output_over_the_caps_is_refused_before_any_pattern_runs() -> None:
    """A megabyte line, or more than MAX_OUTPUT_CHARS, is a ParseError naming the size."""
    with pytest.raises(ParseError, match="a line of 1048576 characters"):
        model.checked_lines("display interface", "-" * 2**20)
    with pytest.raises(ParseError, match="over the cap"):
        model.checked_lines("display interface", "x\n" * (MAX_OUTPUT_CHARS // 2 + 1))
    assert model.checked_lines("show x", "a" * MAX_LINE_CHARS) == ["a" * MAX_LINE_CHARS]


def test_the_pager_prompt_is_still_recognised() -> None:
    """The linear pager pattern still finds the prompts devices print."""
    for prompt in ("  ---- More ----", " --More-- ", "<--- More --->", "-- more --"):
        with pytest.raises(ParseError, match="paged"):
            model.checked_lines("display interface", f"GE0/0/1 current state : UP\n{prompt}\n")


def test_wifi_parsers_linear() -> None:
    """The netsh key/value pattern (two repeats over spaces before) is linear too."""
    from agent.probes.wifi_parsers import netsh_interfaces, netsh_networks

    for parse in (netsh_interfaces.parse, netsh_networks.parse):
        def run(n: int, p: Callable[[str], object] = parse) -> object:
            try:
                return p(("    Name" + " " * n + "x\n") * 20)
            except WifiParseError as exc:
                return exc
        assert _growth(run, 25_000) < LINEAR
