"""The fast yes/no schema check must agree with jsonschema on every document: it decides
the common path of `create`, jsonschema only explains rejections."""
import copy
import glob
import json
import os

import jsonschema
import pytest
from hypothesis import given, settings, strategies as hs

from pyruntime import schemacheck, specgen
from pyruntime.config import SCHEMA_PATH

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "oci-runtime-spec-v1.3.0")

with open(SCHEMA_PATH) as f:
    SCHEMA = json.load(f)
CHECKER = schemacheck.Checker(SCHEMA)
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)


def _agree(doc):
    assert CHECKER.valid(doc) == VALIDATOR.is_valid(doc), json.dumps(doc)[:400]


def _documents():
    files = glob.glob(os.path.join(HERE, "..", "spec-fixtures", "configs", "*.json"))
    files += glob.glob(os.path.join(SHARED, "test", "config", "*", "*.json"))
    files += glob.glob(os.path.join(SHARED, "config*.json"))
    out = []
    for path in sorted(files):
        try:
            with open(path) as f:
                json.load(f)
        except ValueError:
            continue  # the suite's deliberately broken JSON: no document to judge
        out.append(path)
    return out


@pytest.mark.parametrize("path", _documents(), ids=os.path.basename)
def test_agrees_on_known_documents(path):
    with open(path) as f:
        _agree(json.load(f))


def test_default_spec_is_valid():
    assert CHECKER.valid(specgen.default_spec()) is True
    assert CHECKER.valid(specgen.default_spec(rootless=True)) is True


def test_gives_up_on_unknown_keywords():
    assert schemacheck.is_valid({}, {"oneOf": [{"type": "object"}]}) is None


json_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-2**65, 2**65) | hs.floats(allow_nan=False)
    | hs.text(max_size=8) | hs.sampled_from(["pid", "RLIMIT_NOFILE", "CAP_KILL", "rwm", "1.3.0",
                                             "SCMP_ACT_ERRNO", "bind", "/proc", "c", "100MB"]),
    lambda c: hs.lists(c, max_size=3) | hs.dictionaries(hs.text(max_size=6), c, max_size=3),
    max_leaves=6)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


BASE = specgen.default_spec()
BASE["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}
BASE["linux"]["resources"]["memory"] = {"limit": 1 << 20, "swappiness": 10}
BASE["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 0}]
BASE["hooks"] = {"prestart": [{"path": "/bin/true", "timeout": 1}]}
PATHS = list(_paths(BASE))[1:]


@settings(max_examples=400, database=None, deadline=None)
@given(hs.lists(hs.tuples(hs.sampled_from(PATHS), json_values), min_size=1, max_size=3))
def test_agrees_on_mutated_configs(edits):
    doc = copy.deepcopy(BASE)
    for path, value in edits:
        node = doc
        try:
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    _agree(doc)
