"""`re.search(pattern, s) is not None` for simple patterns, without importing `re`.

Importing `re` (with enum, functools, collections, its parser and compiler) costs ~3.5 ms
here, and the schema check of every config that is not yet in the validation cache meets
a `pattern`. The patterns a config schema uses are small: literals, `.`, classes with
ranges, groups, `|`, `*`, `+`, `?`, `^` and `$`. This compiles those to a Pike VM (a set
of NFA threads stepped together: linear in the input, no backtracking) with Python's
semantics, including `$` also matching before a final newline. Anything else raises
Unsupported and the caller uses `re`; tests compare both on generated strings.
"""


class Unsupported(Exception):
    pass


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}


def _literal(c):
    return lambda ch: ch == c


def _any_but_newline(ch):
    return ch != "\n"


class _Parser:
    def __init__(self, p):
        self.p = p
        self.i = 0

    def peek(self):
        return self.p[self.i] if self.i < len(self.p) else None

    def take(self):
        c = self.peek()
        if c is None:
            raise Unsupported("unexpected end of pattern")
        self.i += 1
        return c

    def escape(self):
        c = self.take()
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c.isalnum() or c == "_":
            raise Unsupported("\\" + c)  # \d \w \b \A, backreferences ...: leave to re
        return c  # escaped punctuation is itself

    def parse(self):
        node = self.alt()
        if self.i != len(self.p):
            raise Unsupported("unbalanced ')'")
        return node

    def alt(self):
        branches = [self.cat()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.cat())
        return ("alt", branches) if len(branches) > 1 else branches[0]

    def cat(self):
        items = []
        while self.peek() not in (None, "|", ")"):
            items.append(self.repeat())
        return ("cat", items)

    def repeat(self):
        node = self.atom()
        c = self.peek()
        if c in ("*", "+", "?"):
            if node[0] in ("bol", "eol"):
                raise Unsupported("quantified anchor")
            self.i += 1
            node = ({"*": "star", "+": "plus", "?": "opt"}[c], node)
            if self.peek() == "?":
                self.i += 1  # lazy: the same yes/no answer
            if self.peek() in ("*", "+", "?", "{"):
                raise Unsupported("repeated quantifier")
        elif c == "{":
            raise Unsupported("{m,n}")
        return node

    def atom(self):
        c = self.take()
        if c == "(":
            if self.peek() == "?":
                if self.p[self.i:self.i + 2] != "?:":
                    raise Unsupported("(?...)")
                self.i += 2
            node = self.alt()
            if self.take() != ")":
                raise Unsupported("unbalanced '('")
            return node
        if c == "[":
            return ("char", self.klass())
        if c == ".":
            return ("char", _any_but_newline)
        if c == "^":
            return ("bol",)
        if c == "$":
            return ("eol",)
        if c == "\\":
            return ("char", _literal(self.escape()))
        if c in ("*", "+", "?", "{", ")"):
            raise Unsupported("misplaced " + c)
        return ("char", _literal(c))

    def klass(self):
        neg = self.peek() == "^"
        if neg:
            self.i += 1
        chars = set()
        ranges = []
        first = True
        while True:
            c = self.take()
            if c == "]" and not first:
                break
            first = False
            if c == "[" and self.peek() in (":", "=", "."):
                raise Unsupported("POSIX class")
            if c == "\\":
                c = self.escape()
            if self.peek() == "-" and self.p[self.i + 1:self.i + 2] not in ("]", ""):
                self.i += 1
                hi = self.take()
                if hi == "\\":
                    hi = self.escape()
                if hi < c:
                    raise Unsupported("bad range")
                ranges.append((c, hi))
            else:
                chars.add(c)
        chars = frozenset(chars)
        ranges = tuple(ranges)

        def match(ch):
            hit = ch in chars or any(lo <= ch <= hi for lo, hi in ranges)
            return hit != neg
        return match


def _emit(node, prog):
    kind = node[0]
    if kind == "char":
        prog.append(("c", node[1]))
    elif kind in ("bol", "eol"):
        prog.append((kind[0],))
    elif kind == "cat":
        for n in node[1]:
            _emit(n, prog)
    elif kind == "alt":
        jumps = []
        branches = node[1]
        for n, b in enumerate(branches):
            if n < len(branches) - 1:
                split = len(prog)
                prog.append(None)
                _emit(b, prog)
                jumps.append(len(prog))
                prog.append(None)
                prog[split] = ("s", split + 1, len(prog))
            else:
                _emit(b, prog)
        for j in jumps:
            prog[j] = ("j", len(prog))
    elif kind == "star":
        split = len(prog)
        prog.append(None)
        _emit(node[1], prog)
        prog.append(("j", split))
        prog[split] = ("s", split + 1, len(prog))
    elif kind == "plus":
        start = len(prog)
        _emit(node[1], prog)
        prog.append(("s", start, len(prog) + 1))
    elif kind == "opt":
        split = len(prog)
        prog.append(None)
        _emit(node[1], prog)
        prog[split] = ("s", split + 1, len(prog))


def compile(pattern):
    """A search function for ``pattern``, or Unsupported."""
    if not isinstance(pattern, str):
        raise Unsupported("bytes pattern")
    prog = []
    _emit(_Parser(pattern).parse(), prog)
    prog.append(("m",))

    def search(s):
        n = len(s)
        current = []
        for i in range(n + 1):
            at_end = i == n or (i == n - 1 and s[i] == "\n")
            # a new thread starts at every position: re.search is unanchored
            seen = set()
            stack = [0] + [pc for pc in reversed(current)]
            nxt = []
            ch = s[i] if i < n else None
            while stack:
                pc = stack.pop()
                if pc in seen:
                    continue
                seen.add(pc)
                op = prog[pc]
                t = op[0]
                if t == "c":
                    if ch is not None and op[1](ch):
                        nxt.append(pc + 1)
                elif t == "s":
                    stack.append(op[2])
                    stack.append(op[1])
                elif t == "j":
                    stack.append(op[1])
                elif t == "b":
                    if i == 0:
                        stack.append(pc + 1)
                elif t == "e":
                    if at_end:
                        stack.append(pc + 1)
                else:
                    return True
            current = nxt
        return False
    return search
