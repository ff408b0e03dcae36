"""Tools a language model can call, and the text of a call (Toolformer's linearisation).

    calculate("18 + 12 * 3")                   # "54": + - * /, precedence, decimals, 2 places
    calculate("7 / 0")                         # None: no result
    call_text("56*419", "23464")               # "[Calculator(56*419)→23464]"

The calculator is Toolformer's (Schick et al. 2023, section 3): the four operations, results
rounded to two decimals, no result for invalid input. The public re-implementations get its
parsing wrong (right-associative, no spaces or decimals); this one parses by recursive descent,
left-associative, * and / before + and -, and the tests hold it to Python's arithmetic.
"""

from __future__ import annotations

import math
import re

# ============================================================================ the calculator

_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_TOKEN = re.compile(rf"\s*(?:({_NUMBER})|([-+*/()]))")


def _parse(expr: str) -> float | None:
    """Recursive descent over + - * / and parentheses: left-associative, * and / before + and -.
    None for anything else (letters, a dangling operator, unbalanced brackets)."""
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            if expr[pos:].strip() == "":
                break
            return None
        tokens.append(float(m.group(1)) if m.group(1) else m.group(2))
        pos = m.end()
    at = 0

    def peek():
        return tokens[at] if at < len(tokens) else None

    def factor():
        nonlocal at
        tok = peek()
        if isinstance(tok, float):
            at += 1
            return tok
        if tok == "-":  # a unary minus: -3, 2 * -3
            at += 1
            inner = factor()
            return None if inner is None else -inner
        if tok == "(":
            at += 1
            inner = expression()
            if inner is None or peek() != ")":
                return None
            at += 1
            return inner
        return None

    def term():
        nonlocal at
        value = factor()
        while value is not None and peek() in ("*", "/"):
            op = tokens[at]
            at += 1
            right = factor()
            if right is None or (op == "/" and right == 0):
                return None
            value = value * right if op == "*" else value / right
        return value

    def expression():
        nonlocal at
        value = term()
        while value is not None and peek() in ("+", "-"):
            op = tokens[at]
            at += 1
            right = term()
            if right is None:
                return None
            value = value + right if op == "+" else value - right
        return value

    if not tokens:
        return None
    value = expression()
    return value if value is not None and at == len(tokens) and math.isfinite(value) else None


def calculate(expr: str) -> str | None:
    """The tool: the value of an arithmetic expression (+ - * /, brackets, decimals, spaces),
    rounded to two decimals and written without trailing zeros ("54", "0.29", "2.5"); None for
    an invalid expression or a division by zero (the call then has no result)."""
    if not isinstance(expr, str):
        return None
    value = _parse(expr)
    if value is None:
        return None
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def call_text(expr: str, result: str | None = None, tool: str = "Calculator") -> str:
    """The paper's linearisation e(c) = [Tool(input)] and e(c, r) = [Tool(input)→r]."""
    return f"[{tool}({expr})]" if result is None else f"[{tool}({expr})→{result}]"
