"""pyruntime.minire answers `re.search(p, s) is not None` for the schema's patterns
without importing `re`: it must agree with `re` on every string, and refuse (so the
caller falls back to `re`) whatever syntax it does not implement."""
import json
import re

import pytest
from hypothesis import given, settings, strategies as hs

from pyruntime import minire, schemacheck
from pyruntime.config import SCHEMA_PATH


def _schema_patterns():
    out = set()

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("pattern"), str):
                out.add(x["pattern"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    with open(SCHEMA_PATH) as f:
        walk(json.load(f))
    return sorted(out)


SCHEMA_PATTERNS = _schema_patterns()
EXTRA_PATTERNS = [
    "", "a", "^$", "abc", "a|b|", "(ab|cd)+e?$", "^(?:x|yz)*$", "[]a]", "[^]a]+", "[a-]",
    "[-a]x", r"a\.b", r"\\", r"^\$\^", "a*?b", "a+?", "(a*)*b", "^a|b$", ".", "^.$",
    "[\\]-]", "(|a)c", "x(y(z|)|w)*$", r"[\n]$",
]
ALPHABET = "0123456789abcKMGBrwmMB:.,- +\n_xyzA]^$\\|"


def test_schema_patterns_are_covered():
    # The point of minire: a config's check never needs `re`.
    assert SCHEMA_PATTERNS
    for p in SCHEMA_PATTERNS:
        minire.compile(p)


@pytest.mark.parametrize("pattern", SCHEMA_PATTERNS + EXTRA_PATTERNS)
@settings(max_examples=300, deadline=None)
@given(s=hs.text(alphabet=ALPHABET, max_size=14))
def test_agrees_with_re(pattern, s):
    assert minire.compile(pattern)(s) == (re.search(pattern, s) is not None), (pattern, s)


@pytest.mark.parametrize("pattern,s", [
    (SCHEMA_PATTERNS[0] if SCHEMA_PATTERNS else "", "1.0.2"),
    ("^[1-9][0-9]*[KMG]B$", "2MB\n"),     # Python's $ also matches before a final \n
    ("^[1-9][0-9]*[KMG]B$", "2MB\n\n"),
    ("^[rwm]*$", "rwx"),
    ("^MB:[^\\n]*$", "MB:1\nMB:2"),
    ("^[0-9, -]*$", "0-3, 7"),
])
def test_agrees_on_edge_cases(pattern, s):
    assert minire.compile(pattern)(s) == (re.search(pattern, s) is not None)


@pytest.mark.parametrize("pattern", [
    r"\d", r"\w+", r"\bx", "a{2}", "(?=a)", "(?P<n>a)", r"(a)\1", "[[:alpha:]]", "(a", "a)",
    "*a", "a**", "[z-a]",
])
def test_refuses_what_it_does_not_implement(pattern):
    with pytest.raises(minire.Unsupported):
        minire.compile(pattern)


def test_schemacheck_falls_back_to_re_for_unsupported_patterns():
    schema = {"type": "string", "pattern": r"^\d{2}$"}
    assert schemacheck.is_valid("42", schema) is True
    assert schemacheck.is_valid("4x", schema) is False
