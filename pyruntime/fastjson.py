"""JSON through the C accelerator directly.

`import json` pulls in `re` and `enum` (several ms at every runtime start); the `_json`
builtin does the real work anyway. Errors fall back to the json module for its messages.
"""
import _json

_WS = " \t\n\r"


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__
    memo = None


_scan = _json.make_scanner(_Ctx())
_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)
_encode_compact = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",",
                                     False, False, True)


def loads(s):
    if isinstance(s, (bytes, bytearray)):
        try:
            s = s.decode("utf-8")
        except UnicodeDecodeError:
            import json
            return json.loads(s)
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    try:
        obj, end = _scan(s, i)
    except (StopIteration, ValueError, SystemError):
        # _json reports errors through json.decoder, which may not be imported: let the
        # json module parse again and raise its positioned JSONDecodeError
        import json
        return json.loads(s)
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        import json
        return json.loads(s)
    return obj


def dumps(obj, compact=False):
    try:
        return "".join((_encode_compact if compact else _encode)(obj, 0))
    except TypeError:
        import json
        return json.dumps(obj, separators=(",", ":") if compact else None)


def dumps_indent(obj, indent=2, _level=0):
    """Pretty JSON like Go's MarshalIndent(v, "", "  ") for plain dicts/lists/scalars."""
    pad = " " * (indent * (_level + 1))
    end = " " * (indent * _level)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = ["%s%s: %s" % (pad, dumps(str(k)), dumps_indent(v, indent, _level + 1))
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(pad + dumps_indent(v, indent, _level + 1) for v in obj) + "\n" + end + "]"
    return dumps(obj)


def clone(obj):
    """A deep copy of plain JSON data (the `copy` module would cost an import)."""
    return loads(dumps(obj, compact=True))
