"""One step of an expression's reduction, as a chain takes it: which operations can be done next, what is
left after one of them, and how the chain writes what is left.

A chain reduces an expression one operation at a time and rewrites what is left after each ("57+88=145, and
the expression is now 49+145"). The chain check reads those rewrites back (``reasoning.chain_check``); the
calculator guide writes them (``reasoning.arithmetic_guide``). Both take the steps from here.

Expressions are ASCII arithmetic (digits, ``+ - * /``, brackets), parsed with ``ast`` into ``BinOp`` trees
of non-negative integer ``Constant`` leaves; anything else is no expression (None).
"""

from __future__ import annotations

import ast
from copy import deepcopy

SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def parse(text: str) -> ast.expr | None:
    """``text`` as a tree of binary operations on non-negative integers, or None."""
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, RecursionError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            if type(node.value) is not int or node.value < 0:
                return None
        elif not isinstance(node, ast.BinOp) and type(node) not in SYMBOL:
            return None
    return tree


def ready_operations(tree: ast.expr) -> list[tuple[ast.BinOp, list[str]]]:
    """Operations of two plain numbers (the ones a step can do next), each with its path from the root."""
    found = []

    def walk(node: ast.expr, path: list[str]) -> None:
        if isinstance(node, ast.BinOp):
            if isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant):
                found.append((node, path))
            walk(node.left, [*path, "left"])
            walk(node.right, [*path, "right"])

    walk(tree, [])
    return found


def next_steps(expression: str) -> list[str]:
    """The operations ``expression`` can do next, as a chain writes them (``"44*29-19*8"`` -> ``["44*29",
    "19*8"]``); [] when it is no expression or a bare number."""
    tree = parse(expression)
    if tree is None:
        return []
    return [f"{n.left.value}{SYMBOL[type(n.op)]}{n.right.value}" for n, _ in ready_operations(tree)]


def after_step(tree: ast.expr, a: str, op: str, b: str, result: ast.expr) -> list[ast.expr]:
    """``tree`` with the operation ``a op b`` replaced by ``result``, once for each place it can be done."""
    done = []
    for node, path in ready_operations(tree):
        if (str(node.left.value), SYMBOL.get(type(node.op)), str(node.right.value)) != (a, op, b):
            continue
        if not path:
            done.append(result)
            continue
        changed = deepcopy(tree)
        parent = changed
        for attribute in path[:-1]:
            parent = getattr(parent, attribute)
        setattr(parent, path[-1], result)
        done.append(changed)
    return done


def render(tree: ast.expr) -> str:
    """The expression as a chain writes it: brackets only where precedence needs them, and around every
    right operand of equal precedence ("4+(4-4)"), as the training generator renders its expressions."""
    if not isinstance(tree, ast.BinOp):
        return str(tree.value)
    op = SYMBOL[type(tree.op)]

    def side(child: ast.expr, is_right: bool) -> str:
        text = render(child)
        if isinstance(child, ast.BinOp):
            inner = _PRECEDENCE[SYMBOL[type(child.op)]]
            if inner < _PRECEDENCE[op] or (is_right and inner == _PRECEDENCE[op]):
                return f"({text})"
        return text

    return side(tree.left, False) + op + side(tree.right, True)


def what_is_left(expression: str, a: str, op: str, b: str, c: str) -> str | None:
    """What a chain writes as left of ``expression`` after the step ``a op b = c``; None when the step is
    not an operation the expression can do next or ``c`` is not a non-negative integer."""
    tree, result = parse(expression), parse(c)
    if tree is None or not isinstance(result, ast.Constant):
        return None
    after = after_step(tree, a, op, b, result)
    return render(after[0]) if after else None
