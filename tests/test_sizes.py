"""The restricted size grammar: what it builds, and what it refuses."""

import time

import numpy as np
import pytest
import sympy

from symcost.errors import SizeError, SymbolError
from symcost.sizes import bits_bound, parse_size, symbol, to_size
from symcost.substitution import resolve

H, K, T, M = (symbol(n) for n in "HKTM")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2*H", 2 * H),
        ("(K-1)/2", (K - 1) / 2),
        ("(K-1)//2", sympy.floor((K - 1) / 2)),
        ("H**2 + 3", H**2 + 3),
        ("-2**2", sympy.Integer(-4)),          # as Python: -(2**2)
        ("2**3**2", sympy.Integer(512)),       # right-associative
        ("floor(T/3)", sympy.floor(T / 3)),
        ("ceil(T/3)", sympy.ceiling(T / 3)),
        ("min(T, 128)", sympy.Min(T, 128)),
        ("max(H, K, 3)", sympy.Max(H, K, 3)),
        ("  7  ", sympy.Integer(7)),
        ("I", symbol("I")),                    # a size, not the imaginary unit
        ("E + S + N", symbol("E") + symbol("S") + symbol("N")),
    ],
)
def test_grammar_builds_expressions(text, expected):
    assert sympy.expand(parse_size(text) - expected) == 0


def test_symbols_are_positive_integers():
    assert H.is_integer and H.is_positive
    assert symbol("H") is H


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo hi')",
        "().__class__.__bases__",
        "lambda: 1",
        "H.__class__",
        "exec('1')",
        "eval(1)",
        "sin(H)",
        "9**9**9**9",
        "2**H",
        "2**-1",
        "(" * 100_000 + "1" + ")" * 100_000,
        "-" * 1000 + "1",
        "H +",
        "",
        "1/0",
        "H[0]",
        "'a'",
        "1" * 41,
        "x" * 65,
        "floor(1, 2)",
    ],
)
def test_grammar_refuses_hostile_or_broken_text_quickly(text):
    """Refused, never evaluated: 9**9**9**9 or 10**100000 would not finish.  The bound is a hang
    guard, not a timing (the refusals take microseconds; tests/benchmarks/run.py times them)."""
    start = time.perf_counter()
    with pytest.raises(SizeError):
        parse_size(text)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("value", [0, -3, True, 2.5, 3.0, [1], None, "0", "1-1"])
def test_to_size_refuses_non_positive_or_non_integer(value):
    with pytest.raises(SizeError):
        to_size(value, "kernel_size")


def test_to_size_accepts_symbolic_and_checks_concrete():
    assert to_size("2*H") == 2 * H
    assert to_size(0, "padding", minimum=0) == 0
    with pytest.raises(SizeError):
        to_size("3/2", "x")


@pytest.mark.parametrize("name", ["1a", "a-b", "", "floor", "_x"])
def test_bad_symbol_names(name):
    with pytest.raises(SymbolError):
        symbol(name)


def test_a_foreign_sympy_symbol_becomes_symcosts_positive_integer_symbol():
    D = sympy.Symbol("D")
    expr = to_size(2 * D + 1, "width")
    assert expr.free_symbols == {symbol("D")} and sympy.expand(expr - (2 * symbol("D") + 1)) == 0
    assert to_size(sympy.floor(D / 2), "w").free_symbols == {symbol("D")}


@pytest.mark.parametrize(
    "value, why",
    [
        (-sympy.Symbol("D"), "never at least 1"),
        (1 - symbol("D"), "never at least 1"),
        (symbol("D") + sympy.Rational(1, 2), "never a whole number"),
        (sympy.Float(3.0), "size expression"),
        (2.5 * symbol("D"), "size expression"),
        (sympy.pi, "size expression"),
        (sympy.sin(symbol("D")), "size expression"),
        (sympy.Dummy("q"), "named size"),
        (sympy.Symbol("1a"), "valid size name"),
        (symbol("D") ** symbol("E"), "exponent"),
        (sympy.Integer(2) ** 300, "larger than 2**256"),
        (np.float64(4.0), "decimal point"),
        (np.bool_(True), "whole number"),
    ],
)
def test_sympy_and_numpy_values_are_validated_as_text_is(value, why):
    with pytest.raises(SizeError, match=why.replace("*", r"\*")):
        to_size(value, "size")


def test_numpy_integers_are_whole_numbers():
    assert to_size(np.int64(7)) == 7 and to_size(np.uint8(3)) == 3
    with pytest.raises(SizeError, match="at least 1"):
        to_size(np.int32(0))


def test_the_same_rules_apply_to_text():
    with pytest.raises(SizeError, match="never at least 1"):
        to_size("1-D")
    assert to_size("D-5") == symbol("D") - 5        # may be >= 1: checked on substitution


def test_bits_bound_bounds_the_numbers_substitution_builds_before_building_them():
    A, B = symbol("A"), symbol("B")
    # B = 2**64 (65 bits): A**4 would be 2**256 -> at most 4*65 bits
    assert bits_bound(A ** 4, {A: 65}) >= (2 ** 256).bit_length()
    assert bits_bound(A ** 4 + B, {A: 65, B: 3}) >= 257
    # sums of fractions multiply denominators: 1/3 + 1/5 = 8/15
    assert bits_bound(sympy.Rational(1, 3) + A / 5, {A: 1}) >= 4


def test_resolve_orders_by_dependencies_and_names_cycles():
    A, B, C = symbol("A"), symbol("B"), symbol("C")
    assert resolve({A: 2 * B, B: C + 1, C: sympy.Integer(3)}) == {A: 8, B: 4, C: 3}
    assert resolve({A: A}) == {}                       # A = A: A stays free
    for defs, cycle in (({A: A + 1}, "A -> A"), ({A: B, B: A}, "A -> B -> A"), ({A: 2 * B, B: C, C: A}, "A -> B -> C -> A")):
        with pytest.raises(SymbolError, match=cycle):
            resolve(defs)


def test_resolve_refuses_a_chain_of_powers_before_building_it():
    names = [symbol(n) for n in "ABCDEFG"]
    defs = {a: b ** 64 for a, b in zip(names, names[1:])}
    defs[names[-1]] = sympy.Integer(2)
    with pytest.raises(SizeError, match=r"larger than 2\*\*256"):
        resolve(defs)
