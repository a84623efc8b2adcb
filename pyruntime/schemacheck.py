"""A yes/no JSON-schema check for the keyword subset our own config schema uses.

Engines give every container a distinct config.json (ids, cgroup paths, hostnames), so
a validation cache rarely hits for them, and importing jsonschema costs ~50 ms: more than
the whole rest of `create`. This module answers only "valid or not" for draft-07
`type`, `$ref` (local `#/definitions/...`), `properties`, `additionalProperties`,
`required`, `items`, `enum`, `minimum`, `maximum`, `minItems` and `pattern`. A config it
finds invalid is validated again with jsonschema, whose error names the JSON path, and a
schema using any other keyword makes it give up (None) so jsonschema decides. Tests check
that both always agree.
"""

SUPPORTED = frozenset((
    "type", "$ref", "properties", "additionalProperties", "required", "items", "enum",
    "minimum", "maximum", "minItems", "pattern",
    # annotations only
    "$schema", "$id", "title", "description", "$comment", "definitions", "default",
    "examples",
))

_patterns = {}


def _search(pattern, s):
    search = _patterns.get(pattern)
    if search is None:
        from . import minire
        try:
            search = minire.compile(pattern)
        except minire.Unsupported:
            import re  # ~3.5 ms to import: only for a pattern minire does not cover
            rx = re.compile(pattern)
            search = lambda s: rx.search(s) is not None  # noqa: E731
        _patterns[pattern] = search
    return search(s)


def _is_type(v, t):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "null":
        return v is None
    if isinstance(v, bool):
        return False
    if t == "integer":
        return isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float))
    raise _Unsupported(t)


def _json_equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return a == b


class _Unsupported(Exception):
    pass


class Checker:
    def __init__(self, schema):
        self.root = schema
        self._checked = set()
        self._audit(schema)

    def _audit(self, s):
        if isinstance(s, bool):
            return
        if not isinstance(s, dict):
            raise _Unsupported("schema")
        if id(s) in self._checked:
            return
        self._checked.add(id(s))
        for k, v in s.items():
            if k not in SUPPORTED:
                raise _Unsupported(k)
            if k in ("properties", "definitions"):
                for sub in v.values():
                    self._audit(sub)
            elif k in ("additionalProperties", "items"):
                if isinstance(v, list):
                    raise _Unsupported("tuple items")
                self._audit(v)
            elif k == "$ref" and not v.startswith("#/definitions/"):
                raise _Unsupported(v)

    def _ref(self, ref):
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def valid(self, v, s=None):
        if s is None:
            s = self.root
        if s is True:
            return True
        if s is False:
            return False
        ref = s.get("$ref")
        if ref is not None:
            # draft-07: $ref replaces its siblings
            return self.valid(v, self._ref(ref))
        t = s.get("type")
        if t is not None:
            if isinstance(t, list):
                if not any(_is_type(v, x) for x in t):
                    return False
            elif not _is_type(v, t):
                return False
        enum = s.get("enum")
        if enum is not None and not any(_json_equal(v, e) for e in enum):
            return False
        if isinstance(v, dict):
            for k in s.get("required", ()):
                if k not in v:
                    return False
            props = s.get("properties")
            addl = s.get("additionalProperties", True)
            for k, x in v.items():
                if props is not None and k in props:
                    if not self.valid(x, props[k]):
                        return False
                elif addl is not True and not self.valid(x, addl):
                    return False
        elif isinstance(v, list):
            items = s.get("items")
            if items is not None:
                for x in v:
                    if not self.valid(x, items):
                        return False
            mi = s.get("minItems")
            if mi is not None and len(v) < mi:
                return False
        elif isinstance(v, str):
            p = s.get("pattern")
            if p is not None and not _search(p, v):
                return False
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            lo = s.get("minimum")
            if lo is not None and v < lo:
                return False
            hi = s.get("maximum")
            if hi is not None and v > hi:
                return False
        return True


def is_valid(instance, schema):
    """True/False, or None when the schema uses something this checker does not know."""
    try:
        return Checker(schema).valid(instance)
    except _Unsupported:
        return None
    except RecursionError:
        return None
