"""Answer extraction and equivalence: the ONE place in tool-distill that decides "is this answer right".

The Solver's answer check, the Translator's faithfulness check, the SFT filter and the benchmark
harness all call `grade` / `answers_match`, so a fix here changes every stage at once.

How a prediction is judged against a reference, cheapest check first:

1. `exact`     : equal after a conservative normalisation (spacing, `$`, `\\dfrac`, `\\left`,
                 degrees, percent, `\\text{}` wrappers and units after a number, thousands commas,
                 trailing `.0`). This is the GSM8K-style numeric normalisation.
2. `numeric`   : both sides are plain numbers equal to 1e-6 relative (or one side carries `%` and
                 the other is that value / 100, as the Qwen2.5-Math harness accepts).
3. `words`     : both sides are plain words of 3+ letters ("Evelyn", "odd"): compared case-insensitively and
                 *decided* here, because math-verify reads a bare word as a product of symbols
                 and accepts any anagram ("Evelny" == "Evelyn").
4. `math_verify`: `verify(parse(gold), parse(pred))` (the order matters: gold first) on the
                 normalised strings; it handles fractions, radicals, intervals, sets, tuples,
                 matrices, equations.
5. `sympy`     : when math-verify could not parse a side (plain-text answers such as
                 `2*sqrt(2)`), sympy's parser and `simplify(a - b) == 0`.

math-verify's own timeouts use `signal.alarm`, which only works in the main thread; Prefect runs
tasks in worker threads, so there the timeout is off and `_too_costly` refuses inputs that could
make sympy run away (huge powers, factorials, very long strings) instead.
"""

from __future__ import annotations

import re
import threading
from typing import Literal

from pydantic import BaseModel

GradeMethod = Literal["exact", "numeric", "words", "math_verify", "sympy", "mismatch", "no_answer"]

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_MAX_SYMBOLIC_CHARS = 400


class GradeResult(BaseModel):
    """The verdict on one completion: what was extracted, whether it is right, and which check decided."""

    extracted: str | None
    correct: bool
    method: GradeMethod


# ---------------------------------------------------------------- extraction


def _braced(text: str, open_index: int) -> str | None:
    """The content of the brace group opening at `text[open_index] == '{'`, nested braces allowed."""
    depth = 0
    for i in range(open_index, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : i]
    return None  # unbalanced: the completion was cut off inside the box


def extract_boxed(text: str) -> str | None:
    """Content of the LAST non-empty `\\boxed{...}` or `\\fbox{...}` (also `\\boxed 5`), or None.

    Empty boxes are skipped: weak models echo the instruction ("put your answer within \\boxed{}").
    """
    starts = [m.start() for m in re.finditer(r"\\(?:boxed|fbox)(?![A-Za-z])", text)]
    for start in reversed(starts):
        command = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
        rest = start + len(command)
        while rest < len(text) and text[rest] == " ":
            rest += 1
        if rest < len(text) and text[rest] == "{":
            content = _braced(text, rest)
            if content is not None and content.strip():
                return content.strip()
        elif rest > start + len(command):  # "\boxed 5": the token up to the next space or `$`
            match = re.match(r"[^\s$]+", text[rest:])
            if match:
                return match.group(0).rstrip(".").strip()
    return None


_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+?)(?:\n|$)", re.IGNORECASE
)
_HASHES = re.compile(r"####\s*(.+?)\s*(?:\n|$)")


def clean_sentence_answer(answer: str) -> str | None:
    """"$x = 4$." -> "x = 4": the first math span if the sentence opens one, without the full stop."""
    answer = answer.strip().strip("*").strip()
    if answer.startswith("$"):
        span = re.match(r"\$+([^$]*)\$+", answer)
        answer = span.group(1) if span else answer.lstrip("$")
    answer = re.sub(r"[.。]+$", "", answer.strip()).strip()
    if "\\boxed" in answer or "\\fbox" in answer:  # the instruction echoed back, not an answer
        return None
    return answer or None


def extract_final_answer(text: str) -> str | None:
    """The model's final answer: the last box, else the last "The answer is ...", else "#### x"."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    matches = _ANSWER_IS.findall(text)
    if matches:
        return clean_sentence_answer(matches[-1])
    matches = _HASHES.findall(text)
    if matches:
        return clean_sentence_answer(matches[-1])
    return None


# ---------------------------------------------------------------- normalisation

_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
# A bare number followed by words of two or more letters ("18 dollars", "5 cm^2"), never by
# LaTeX commands or single letters, so "5\\pi" and "5 x" keep their meaning.
_UNIT_WORDS = re.compile(r"^(-?[\d.,]+)(?:\s+[a-zA-Z]{2,}\.?(?:\^\{?\d\}?)?)+$")
_NOT_UNITS = {"pi", "sqrt", "ln", "log", "sin", "cos", "tan", "cot", "sec", "csc", "exp"}
_WORDS = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")


def _unwrap_text(s: str) -> str:
    """`\\text{x}` / `\\textbf{x}` / `\\mbox{x}` / `\\mathrm{x}` -> `x` (innermost first)."""
    pattern = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
    previous = None
    while previous != s:
        previous, s = s, pattern.sub(r"\1", s)
    return s


def normalize_answer(answer: str) -> tuple[str, bool]:
    """A conservative canonical form of an answer string, and whether it carried a percent sign.

    Only rewrites that cannot turn a wrong answer into a right one: layout, wrappers, units after
    a bare number, thousands separators, trailing zeros.
    """
    s = answer.strip()
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"^\\\(|\\\)$", "", s).strip()
    s = re.sub(r"(?<!\\)\\[,;:! ]|~", " ", s)  # LaTeX spacing, but not the row break `\\ `
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree", "", s)
    s = re.sub(r"\s*\b(?:degrees?|deg)\b\.?\s*$", "", s)
    percent = bool(re.search(r"\\?%|\\percent\b|\bpercent\b", s))
    s = re.sub(r"\\?%|\\percent\b|\s*\bpercent\b", "", s)
    s = _unwrap_text(s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    unit = _UNIT_WORDS.match(s)  # "18 dollars", "5 cm^2", "1,200 \\text{ km}" -> the number
    if unit and not (set(re.findall(r"[a-zA-Z]+", s)) & _NOT_UNITS):
        number = unit.group(1).replace(",", "") if _THOUSANDS.match(unit.group(1)) else unit.group(1)
        if _NUMBER.match(number):
            s = number
    if _NUMBER.match(s):
        if "." in s:
            s = s.rstrip("0").rstrip(".") or "0"
        s = re.sub(r"^(-?)0+(?=\d)", r"\1", s)  # AIME keys such as "025"
        if s in ("-0", ""):
            s = "0"
    return s, percent


# ---------------------------------------------------------------- equivalence


def _numbers_equal(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _too_costly(s: str) -> bool:
    """Inputs that can send sympy into an hours-long evaluation: skipped, judged by string only."""
    if len(s) > _MAX_SYMBOLIC_CHARS:
        return True
    if re.search(r"\^\s*\{?\s*-?\d{4,}", s):  # 2^{10000}
        return True
    if re.search(r"\^\s*\{[^{}]*\^", s) or re.search(r"\^\s*\d+\s*\^", s):  # towers 10^{10^{10}}
        return True
    return bool(re.search(r"\d{4,}\s*!", s))  # 10000!


def _math_verify(reference: str, prediction: str) -> bool | None:
    """math-verify's verdict, or None if it could not parse one side."""
    from math_verify import parse, verify

    in_main = threading.current_thread() is threading.main_thread()
    timeout = 5 if in_main else None
    try:
        gold = parse(f"${reference}$", parsing_timeout=timeout)
        pred = parse(f"${prediction}$", parsing_timeout=timeout)
        if not gold or not pred:
            return None
        return bool(verify(gold, pred, timeout_seconds=timeout))
    except Exception:  # math-verify raises on timeouts and on sympy internals; treat as "unknown"
        return None


def _sympy_equal(reference: str, prediction: str) -> bool:
    """Plain-text expressions (`2*sqrt(2)`, `x^2+1`) compared with sympy."""
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    transformations = (*standard_transformations, implicit_multiplication_application, convert_xor)
    try:
        a = parse_expr(reference, transformations=transformations, evaluate=True)
        b = parse_expr(prediction, transformations=transformations, evaluate=True)
        return bool(sympy.simplify(a - b) == 0)
    except Exception:  # unparsable text is simply not equal
        return False


def _match_method(prediction: str, reference: str) -> GradeMethod:
    pred, pred_percent = normalize_answer(prediction)
    ref, ref_percent = normalize_answer(reference)
    if not pred:
        return "no_answer"
    if pred == ref:
        return "exact"
    if _NUMBER.match(pred) and _NUMBER.match(ref):
        p, r = float(pred), float(ref)
        if _numbers_equal(p, r):
            return "numeric"
        if (pred_percent != ref_percent) and (
            _numbers_equal(p / 100, r) if pred_percent else _numbers_equal(p, r / 100)
        ):
            return "numeric"
        return "mismatch"
    if _WORDS.match(pred) and _WORDS.match(ref) and max(len(pred), len(ref)) > 2:  # "ab" may be algebra
        return "words" if pred.lower() == ref.lower() else "mismatch"
    if _too_costly(pred) or _too_costly(ref):
        return "mismatch"
    verdict = _math_verify(ref, pred)
    if verdict is not None:
        return "math_verify" if verdict else "mismatch"
    return "sympy" if _sympy_equal(ref, pred) else "mismatch"


def answers_match(prediction: str, reference: str) -> bool:
    """Whether an extracted answer equals the reference answer (see the module docstring)."""
    return _match_method(prediction, reference) not in ("mismatch", "no_answer")


def grade(completion: str, reference: str) -> GradeResult:
    """Extract the final answer from a whole completion and judge it against the reference."""
    extracted = extract_final_answer(completion)
    if extracted is None:
        return GradeResult(extracted=None, correct=False, method="no_answer")
    method = _match_method(extracted, reference)
    return GradeResult(extracted=extracted, correct=method not in ("mismatch", "no_answer"), method=method)
