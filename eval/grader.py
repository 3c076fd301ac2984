"""Answer extraction and equivalence: the ONE place in tool-distill that decides "is this answer right".

The Solver's answer check, the Translator's faithfulness check, the SFT filter and the benchmark
harness all call `grade` / `answers_match`, so a fix here changes every stage at once.

    grade(completion, reference, problem=None)  -> GradeResult(extracted, span, correct, method, confidence)
    answers_match(prediction, reference, problem=None) -> bool   (an already extracted answer)

Extraction (`extract_final_answer`), in this order; text after a chat-template token such as
`<|im_start|>` is the next turn and is dropped first, and a closing `<answer>...</answer>` tag
narrows the search to its text:
1. the Minerva sentence "Final Answer: The final answer is $X$. I hope it is correct." (the last one);
2. the last non-empty `\\boxed{}` / `\\fbox{}`; when the reference has k > 1 elements and the last k
   boxes hold one element each, `grade` also tries them as one list ("\\boxed{2} and \\boxed{3}");
   a box that never closes means the completion was cut off: no answer;
3. the last "the (final) answer is X" / "Answer: X" / "**Final Answer**" sentence, then "#### X"; a
   sentence of prose there ("The largest $n$ is 34") gives the value after its last "is / = ";
4. a reply that is only an answer ("$x \\le 5$", "p - q", "28 percent", "so k equals 4");
5. otherwise math-verify's own extraction (`LatexExtractionConfig(boxed_match_priority=0)`,
   `ExprExtractionConfig()`, or `StringExtractionConfig` for option letters), on a short one-line
   reply or on the conclusion ("therefore / thus / so ...") of the last line only, never on a
   completion that stops mid-sentence (confidence `heuristic`).
Why extraction is ours first, measured: on the whole completion math-verify takes *all* boxes as a
set (`\\boxed{2} ... \\boxed{3}` -> {2, 3}), reads `1\\,000` as 1*0 and `1e6` as 1, and without an
anchor takes the last number anywhere, which accepted committed eval completions that were cut off
before answering (docs/grading.md). A reference that is a whole solution is reduced to its boxes.

Comparison, cheapest and strictest first (`method`, then `confidence`):
- `exact`   (exact):    equal after a conservative normalisation: layout, `$`, `\\text{}`, `\\dfrac`,
                        degrees, percent, units after a value (`5\\text{ cm}^2`), thousands separators
                        (`1,000`, `1\\,000`, `1{,}000`, `1,\\!000`, thin spaces), trailing `.0`,
                        a leading `x =` when the other side is a bare value.
- `choice`  (exact):    multiple-choice letters: `(B)`, `\\textbf{(B)}`, `B) 12` are the letter B; for a
                        reference "(B) 12", the letter or the option's text "12" is right.
- `words`   (exact):    plain words, case-insensitive. math-verify reads a word as a product of
                        symbols and accepts any anagram ("Evelny" == "Evelyn"), so words never reach it.
- `numeric` (numeric):  plain numbers (integers, decimals, `a/b`, `\\frac{a}{b}`, mixed numbers,
                        `1e6`, `3\\times10^{5}`, "1.5 million", a decimal comma `3,5` when the reference is one number),
                        repeating decimals (`0.1\\overline{6}`), a decimal cut short (`0.666...`: to the digits
                        shown), counts in words (`two`),
                        equal to 1e-6 relative, or at the precision the problem or the reference
                        states ("to the nearest tenth", "2 decimal places", "3 significant figures",
                        `\\approx 3.14`); percent and its value / 100 both accepted. Lists, sets and
                        tuples of such numbers element by element (order kept for tuples and intervals).
                        math-verify rejects `3,5` vs 3.5, `1\\,000` vs 1000, `1e6`, `12.5\\%` vs 12.5.
                        Numerals in a base (`1011_2`) match digit by digit, the base omitted or the same.
                        A vector as a one-column or one-row matrix, `\\langle a, b \\rangle`, a tuple, `(a, b)^T`
                        or `a\\mathbf{i} + b\\mathbf{j}`: entry by entry. Values in two known units of one
                        dimension after converting (eval/units.py: "120 minutes" for "2 hours"; an angle marked
                        in degrees against one marked in radians, symbolically).
                        Inequalities with numeric bounds as intervals, "x < 2 or x > 3" as their union;
                        "all real numbers" is (-oo, oo) and "no solution" the empty set.
- `math_verify` (symbolic): `verify(parse(gold), parse(pred))` for everything else (radicals, `\\pi`,
                        intervals, relations such as `a \\le 5` vs `(-\\infty, 5]`, matrices, expressions).
                        Failing that, `i` as the imaginary unit when both sides are then numbers.
- `sympy`   (symbolic): plain-text expressions math-verify cannot parse (`2*sqrt(2)`).
- `timeout`:            the symbolic step ran past its time limit; counted as wrong, never hidden.

Time limits: math-verify's own timeouts use `signal.alarm`, which only works in the main thread,
and Prefect runs tasks in worker threads. So the symbolic step runs in a separate worker process
(one per concurrently grading thread, started on first use, reused) under a real deadline; a worker
that overruns is killed and replaced, and the grade returns `method="timeout"` within its limit.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from eval.units import (SI_UNITS, TEXT_UNITS, TRAILING_UNITS, Unit, conversion_factor, unit_of, units_match,
                        without_latex_spacing)

GradeMethod = Literal[
    "exact", "choice", "words", "numeric", "math_verify", "sympy", "mismatch", "no_answer", "timeout"
]
Confidence = Literal["exact", "numeric", "symbolic", "heuristic"]

DEFAULT_TIME_LIMIT_S = 5.0  # per grade, all symbolic comparisons together
_MAX_ANSWER_CHARS = 1000  # longer "answers" are runaway text, not answers: judged by string only
_MAX_UNANCHORED_CHARS = 4000  # math-verify searches only the end of a long unanchored text
_CONFIDENCE: dict[str, Confidence] = {
    "exact": "exact", "choice": "exact", "words": "exact", "numeric": "numeric",
    "math_verify": "symbolic", "sympy": "symbolic",
}
_BOX_COMMANDS = ("\\boxed", "\\fbox")


class GradeResult(BaseModel):
    """The verdict on one completion: what was extracted (and where), whether it is right, which check
    decided, and how strong that check is.

    `confidence` says how an accepted answer was accepted, for callers that keep only verdicts of a
    given strength: `exact` (equal strings, letters or words), `numeric`, `symbolic` (math-verify /
    sympy), `heuristic` (the answer had no anchor: no box, no "answer is", so math-verify's own
    extraction picked it from the text). None when the answer is not accepted.
    """

    extracted: str | None
    correct: bool
    method: GradeMethod
    confidence: Confidence | None = None
    span: tuple[int, int] | None = None  # [start, end) of `extracted` in the completion (of its value, when a unit
    # written after the box or the math was added: "$\\boxed{5}$ cm" is extracted as "5 cm")


# ---------------------------------------------------------------- extraction


def _brace_pairs(text: str) -> dict[int, int]:
    """Where each brace group closes, {index of its `{`: index of its `}`}, found in one pass (a completion
    may nest thousands of boxes); a group that never closes is absent. `\\{` and `\\}` are set braces."""
    pairs: dict[int, int] = {}
    opened: list[int] = []
    for brace in re.finditer(r"(?<!\\)[{}]", text):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            pairs[opened.pop()] = brace.start()
    return pairs


def _boxes(text: str) -> list[tuple[str, int, int]]:
    """Every complete, non-empty `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5`: (content, start, end)."""
    found = []
    pairs = _brace_pairs(text)
    for match in re.finditer(r"\\(?:boxed|fbox)(?![A-Za-z])", text):
        rest = match.end()
        while rest < len(text) and text[rest] == " ":
            rest += 1
        if rest < len(text) and text[rest] == "{":
            content = text[rest + 1 : pairs[rest]] if rest in pairs else None  # None: cut off inside the box
            if content is not None and content.strip():
                start = rest + 1 + (len(content) - len(content.lstrip()))
                found.append((content.strip(), start, start + len(content.strip())))
        elif rest > match.end():  # "\boxed 5": the token up to the next space or `$`
            token = re.match(r"[^\s$]+", text[rest:])
            if token and token.group(0).rstrip(".").strip():
                value = token.group(0).rstrip(".").strip()
                found.append((value, rest, rest + len(value)))
    return found


def extract_boxed(text: str) -> str | None:
    """Content of the LAST non-empty `\\boxed{...}` or `\\fbox{...}` (also `\\boxed 5`), or None.

    Empty boxes are skipped: weak models echo the instruction ("put your answer within \\boxed{}").
    """
    boxes = _boxes(text)
    return boxes[-1][0] if boxes else None


_MATH_SPAN = re.compile(
    r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$((?:\\\$|[^$])+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL
)
_MINERVA = re.compile(r"final answer is:?\s*(.+?)\s*\.?\s*I hope it is correct", re.IGNORECASE | re.DOTALL)
_ANSWER_IS = re.compile(
    r"(?:(?:^|\n)[ \t]*#{1,6}[ \t]*\**(?:final[ \t]+)?answer\**[ \t]*:?[ \t]*\n|(?:^|\n)[ \t]*\**result\**[ \t]*:\**|"
    r"final answer\**\s*\n|(?:final answer|the (?:correct |right |best )?(?:answer(?: choice)?|option|choice)|answer)(?:\s+(?:to (?:the|this) (?:problem|question)|"
    r"is therefore))?\s*\**\s*(?:is|:|=|was)\**)\s*:?\s*", re.IGNORECASE
)
_HASHES = re.compile(r"####\s*")
# "24 is the answer": the value before the anchor (a number or one math span)
_VALUE_IS_THE_ANSWER = re.compile(
    r"(?<![\w.$])(?P<value>\$[^$\n]{1,80}\$|-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s+(?:is|must be|should be)\s+"
    r"(?:the|our|my)\s+(?:final\s+|correct\s+|required\s+)?answer\b", re.IGNORECASE)
# R1-style replies close with `<answer>...</answer>` (its text may itself be a sentence or hold a box).
_ANSWER_TAG = re.compile(r"<answer>(?P<inner>.*?)</answer>", re.IGNORECASE | re.DOTALL)
# A completion that is only an answer: one math span (and a unit or percent word), or a short value.
_BARE_MATH = re.compile(
    r"^\s*(?:\$\$?|\\\(|\\\[)(?P<math>.+?)(?:\$\$?|\\\)|\\\])\s*(?P<tail>%|[A-Za-z]{1,12})?\s*[.,;]?\s*$", re.DOTALL
)
_BARE_VALUE = re.compile(r"^\s*(?P<value>(?:[^\n$]|\\\$){1,160}?)\s*[.]?\s*$")
_BOLD_LAST_LINE = re.compile(r"\n[ \t]*\*\*(?P<value>[^*\n]{1,80})\*\*[ \t]*\.?\s*$")  # a value set apart in bold


def _sentence_end(text: str, start: int) -> int:
    """End of the answer that starts at `text[start]`: the line, or an earlier full stop that ends a
    sentence (". " before a capital letter, or at the end), never one inside math or a number."""
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    in_math, i = False, start
    while i < line_end:
        if text.startswith("$", i) or text.startswith("\\(", i) or text.startswith("\\)", i):
            in_math = not in_math if text[i] == "$" else text[i + 1] == "("
            i += 2 if text[i] == "\\" else 1
            continue
        if not in_math and text[i] in ".!?" and (i + 1 == line_end or text[i + 1] == " "):
            if i + 1 == line_end or re.match(r"\s+[A-Z(*]", text[i + 1 :]):
                return i
        i += 1
    return line_end


def clean_sentence_answer(answer: str) -> str | None:
    """"$x = 4$." -> "x = 4": the first math span if the sentence opens one, without the full stop."""
    answer = answer.strip().strip("*").strip()
    answer = re.split(r"\s*\.?\s*I hope it is correct", answer, flags=re.IGNORECASE)[0]
    span = _MATH_SPAN.match(answer)
    if span and (joined := _joined_math_spans(answer)):
        answer = joined
    elif span:
        math = next(group for group in span.groups() if group is not None)
        unit = _unit_after(answer[span.end():], math)
        answer = f"{math} {unit}" if unit and _TRAILING_UNIT.fullmatch(answer[span.end():]) else math  # "$12$ m."
    elif answer.startswith("$"):  # "$18." : a price, not an opening math delimiter
        answer = answer.lstrip("$")
    answer = re.sub(r"[.。]+$", "", answer.strip()).strip().strip("*").strip()
    answer = re.sub(r"^(?P<kept>[^,]+?),\s*(?:and\s+)?not\s+\S.*$", r"\g<kept>", answer)  # "17, not 71"
    answer = _without_trailing_clause(answer)
    if answer.endswith(")") and answer.count(")") > answer.count("(") and "[" not in answer:
        answer = answer[:-1].rstrip(". ")  # "... the answer is twelve.)": the end of a parenthetical
    if "\\boxed" in answer or "\\fbox" in answer:  # the instruction echoed back, not an answer
        return None
    return answer or None


_TRAILING_CLAUSE = re.compile(r"(?:,\s*|\s+)(?:because|since|which|where|so that|i\.e\.|attained|achieved|when)\b")


def _without_trailing_clause(answer: str) -> str:
    """"4, which is less than 7" -> "4", "5 because the sum is 12" -> "5": a clause after the value (outside math)
    gives a reason or a place, not the answer."""
    for m in _TRAILING_CLAUSE.finditer(answer):
        if answer[: m.start()].count("$") % 2 == 0 and re.search(r"[\d$]", answer[: m.start()]):
            return answer[: m.start()].strip()
    return answer


_TRAILING_UNIT = re.compile(
    r"\s*\$*\s*(?P<unit>\\(?:text|mathrm|mbox)\s*\{[^{}]*\}(?:\s*\^\s*\{?-?\d\}?)?|"
    r"[A-Za-z]+\.?(?:\s*/\s*[A-Za-z]+)?(?:\s*\^\s*\{?-?\d\}?)?)\s*(?:[.,;!)]\s*)?")


def _unit_after(after: str, value: str) -> str | None:
    """The known unit written right after a value's math ("$12$ m.", "$\\boxed{5}$ hours"), where the value
    names none: dropping it would grade "12 m" right for "12 cm"."""
    m = _TRAILING_UNIT.match(after)
    if m is None or unit_of(value) is not None or not re.match(r"(?:[.,;!)]|\s*$)", after[m.end("unit"):].lstrip(" $")):
        return None
    return m.group("unit").rstrip(".") if unit_of(f"1 {m.group('unit')}") is not None else None


_JOINT = r"(?:,\s*(?:and|or)?|and|or|;)"  # between the values of one list: "$5$ and $7$", "\\boxed{2}, \\boxed{3}"
_SPAN_JOINT = re.compile(r"\s*" + _JOINT + r"\s*")


def _joined_math_spans(answer: str) -> str | None:
    """"$5$ and $7$" -> "5, 7": math spans joined only by "and", "or" or commas are one answer with
    several values, so an extra root or a hedge ("$12$ or $13$") cannot pass as its first value."""
    spans = list(_MATH_SPAN.finditer(answer))
    if len(spans) < 2 or answer[spans[-1].end():].strip(" .") or any(
            not _SPAN_JOINT.fullmatch(answer[left.end():right.start()]) for left, right in zip(spans, spans[1:])):
        return None
    values = [next(group for group in span.groups() if group is not None).strip() for span in spans]
    joints = {answer[left.end():right.start()].strip(" ,") for left, right in zip(spans, spans[1:])}
    if joints == {"or"} and all(_RELATION_SIGN.search(value) for value in values):
        return " or ".join(values)  # "$x<-2$ or $x>3$": a union of intervals, not a list
    return ", ".join(values)


@dataclass(frozen=True)
class _Extraction:
    answer: str
    start: int
    end: int
    anchored: bool  # False: taken from a conclusion sentence, not a box or an "answer" anchor


_DISPLAY_MATH = re.compile(r"\\\[(?P<bracket>.+?)\\\]|\$\$(?P<dollars>.+?)\$\$", re.DOTALL)


_CODE_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n(?P<code>[^`]+?)\n[ \t]*```")


def _sentence_after(text: str, start: int, anchored: bool = True) -> _Extraction | None:
    if (fence := _CODE_FENCE.match(text, start)) and "\n" not in fence.group("code").strip():
        start = fence.start("code")  # "Final answer:\n```\n42\n```": the one line inside the fence
    if block := _DISPLAY_MATH.match(text, start):  # "Final answer:\n\\[\n5\n\\]": the block on the next lines
        group = "bracket" if block.group("bracket") is not None else "dollars"
        math = block.group(group).strip()
        begin = text.find(math, block.start(group))
        return _Extraction(math, begin, begin + len(math), anchored) if math else None
    end = _sentence_end(text, start)
    raw = text[start:end]
    answer = clean_sentence_answer(raw)
    if answer is None:
        return None
    answer = _value_of_prose(answer)
    offset = raw.find(answer)
    begin = start + max(offset, 0)
    return _Extraction(answer, begin, begin + len(answer), anchored)


_PROSE_RELATION = re.compile(r"\s(?:is equal to|equals|is|are|was|=)\s+", re.IGNORECASE)
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+(?![\d/]))?(?:\s*(?:%|percent))?")  # "3/4 of the pizza"


def _prose_words(text: str) -> int:
    """Words outside math, LaTeX commands and environment names: "The largest $n$ is" has 3."""
    outside = re.sub(r"\$[^$]*\$|\\\(.*?\\\)|\\(?:begin|end)\{[^}]*\}|\\[a-zA-Z]+", " ", _unwrap_text(text))
    return len(re.findall(r"[A-Za-z]{2,}", outside))


def _is_bare_answer(text: str) -> bool:
    """A one-line reply that is an answer: math or a number ("p - q", "12 apples"), one or two words
    ("Evelyn", "no solution"), or a short statement of a value ("so k equals 4"); not a sentence such as
    "I don't know". Words are compared exactly, so a phrase taken as an answer cannot match by accident."""
    words = _prose_words(text)
    if words <= 1:
        return True
    # two words: a value with a relation or digits, or a phrase answer ("no solution"); not "I don't know"
    return words < 3 and not re.search(r"'|\bI\b|\?", text)


_ALL_WITH = re.compile(r"^all\s+(?:real\s+)?(?:numbers\s+)?\$?[a-z]\$?\s+(?:with|such that|satisfying|where|for which)\s+(?P<relation>.+)$",
                       re.IGNORECASE)


def _value_of_prose(answer: str) -> str:
    """"The largest $n$ is 34" -> "34": the value a sentence after an answer anchor states.

    A sentence of three or more words is prose, not an answer: its value is what follows its last
    "is / equals / =" outside math, else its last math span, else its last number. Anything shorter
    ("12 apples", "Evelyn", "x = 3") is the answer as written.
    """
    if all_with := _ALL_WITH.match(answer):  # "all $x$ with $-3 < x < 3$"
        return clean_sentence_answer(all_with.group("relation")) or answer
    if _prose_words(answer) < 3:
        return answer
    relations = [m for m in _PROSE_RELATION.finditer(answer) if answer[: m.start()].count("$") % 2 == 0]
    if relations:
        tail = answer[relations[-1].end():].strip()
        cleaned = clean_sentence_answer(tail)
        if cleaned and _prose_words(cleaned) < 3:
            return cleaned
    spans = list(_MATH_SPAN.finditer(answer))
    if spans:
        return next(group for group in spans[-1].groups() if group is not None).strip()
    numbers = list(_LAST_NUMBER.finditer(answer))
    return numbers[-1].group(0) if numbers else answer


def _anchored_after(text: str, position: int, needs_value: bool = True) -> _Extraction | None:
    """The answer the last "the answer is" / "Answer:" / "#### " anchor after `position` states, the latest one
    first ("The answer is 0.5 hours, i.e. 30 minutes. #### 30" means 30). After a box, only one that states a
    value counts: "The answer is reasonable because ..." corrects nothing."""
    anchors = sorted((m for pattern in (_ANSWER_IS, _HASHES, _VALUE_IS_THE_ANSWER) for m in pattern.finditer(text, position)),
                     key=lambda m: m.end(), reverse=True)
    for match in anchors:
        if re.search(r"\b(?:check|verify|confirm|test)\w*\s+(?:\w+\s+)?$", text[max(0, match.start() - 30):match.start()],
                     re.IGNORECASE):
            continue  # "We may check our answer: 17 * 44 = 748 ..."
        if match.re is _VALUE_IS_THE_ANSWER:
            value, start = match.group("value"), match.start("value")
            if value.startswith("$"):
                value, start = value[1:-1], start + 1
            return _Extraction(value.strip(), start, start + len(value), True)
        found = _sentence_after(text, match.end())
        if found is not None and (not needs_value or re.search(r"[\d$\\]", found.answer)):
            return found
    return None


def _meant_boxes(text: str, boxes: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Of the text's `boxes`, those that may hold the answer: not one asked as a question ("\\boxed{12}? No, ..."), not
    one the text rejects ("\\boxed{15}, not \\boxed{14}") nor one in a parenthetical after an earlier box
    ("\\boxed{73}. (An earlier attempt gave \\boxed{37}.)")."""
    boxes = [box for box in boxes if not re.match(r"\s*\$*\s*\?", text[box[2]:].lstrip("}"))]  # "\\boxed{12}? No ..."
    kept = []
    for content, start, end in boxes:
        before = text[max(0, start - 40):start]
        since_last = text[kept[-1][2]:start] if kept else ""
        if re.search(r"\bnot\s*\$?\s*\\(?:boxed|fbox)\s*\{$", before) or since_last.count("(") > since_last.count(")"):
            continue
        kept.append((content, start, end))
    return kept or boxes


_BOX_JOINT = re.compile(r"\}\s*\$?\s*" + _JOINT + r"\s*\$?\s*(?:[A-Za-z]\s*=\s*)?\\(?:boxed|fbox)\s*\{\s*")


def _joined_boxes(text: str, boxes: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The last of the text's `boxes` written as one list ("$\\boxed{-1}$, $\\boxed{2}$ and $\\boxed{5}$", "$x =
    \\boxed{2}$ and $y = \\boxed{3}$"): together they are the answer, so an extra root or a hedge ("\\boxed{8} or
    \\boxed{9}") does not pass as the last one."""
    boxes = _meant_boxes(text, boxes)
    group = boxes[-1:]
    for previous in reversed(boxes[:-1]):
        if not _BOX_JOINT.fullmatch(text[previous[2]:group[0][1]]):
            break
        group.insert(0, previous)
    return group


def _extract(text: str) -> _Extraction | None:
    tags = [m for m in _ANSWER_TAG.finditer(text) if m.group("inner").strip()]
    if tags:
        tag = tags[-1]
        inner = _extract(tag.group("inner"))
        if inner is not None:
            offset = tag.start("inner")
            return _Extraction(inner.answer, offset + inner.start, offset + inner.end, inner.anchored)
    minerva = list(_MINERVA.finditer(text))
    if minerva:
        found = _sentence_after(text, minerva[-1].start(1))
        if found is not None:
            return found
    boxes = _meant_boxes(text, _boxes(text))
    if boxes and (later := _anchored_after(text, boxes[-1][2])) is not None:
        return later  # "I wrote \\boxed{35} but double counted ... Answer: 30"
    if boxes:
        content, start, end = boxes[-1]
        if unit := _unit_after(text[end:].lstrip("}"), content):  # "$\\boxed{5}$ cm": the unit counts
            return _Extraction(f"{content} {unit}", start, end, True)
        return _Extraction(content, start, end, True)
    if _cut_off_in_box(text):  # no answer was given
        return None
    if (found := _anchored_after(text, 0, needs_value=False)) is not None:
        return found
    if (m := _BOLD_LAST_LINE.search(text)) and re.search(r"[\d\\]", m.group("value")) and _is_bare_answer(m.group("value")):
        return _Extraction(m.group("value").strip(), m.start("value"), m.end("value"), True)  # "...\n\n**42**"
    if (m := _BARE_MATH.match(text)) and "$" not in m.group("math"):
        tail = f" {m.group('tail')}" if m.group("tail") else ""
        return _Extraction(m.group("math").strip() + tail, m.start("math"), m.end("tail") if tail else m.end("math"), True)
    if (m := _BARE_VALUE.match(text)) and _is_bare_answer(m.group("value")):
        start, value = m.start("value"), m.group("value")
        relations = list(_PROSE_RELATION.finditer(value)) if _prose_words(value) else []
        if relations:  # "so k equals 4"
            start, value = start + relations[-1].end(), value[relations[-1].end():]
        return _Extraction(value.strip(), start, start + len(value.strip()), True)
    return None  # no anchor: math-verify's own extraction is tried on the whole text (see `grade`)


def _cut_off_in_box(text: str) -> bool:
    """A `\\boxed{` whose brace never closes: the completion stopped while writing its answer."""
    pairs = _brace_pairs(text)
    return any(m.end() - 1 not in pairs for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text))


_CONCLUSION = re.compile(
    r"\b(?:therefore|thus|hence|so|in conclusion|in total|altogether|finally|we (?:get|find|obtain|have)|"
    r"which gives|this gives|the (?:result|solution|value|answer|sum|product|total|matrix|vector) is)\b",
    re.IGNORECASE,
)


def _unanchored_region(text: str) -> str | None:
    """Where math-verify may look for an answer that no anchor marks, or None.

    A short one-line reply is searched whole ("The identity matrix is $I$."). In a longer one only
    its conclusion is: from the last "therefore / thus / so / we get ..." of its last line, and
    only if the text ends a sentence. A completion cut off mid-sentence (generation ran out of
    tokens) has stated no answer, and the last number of its rambling is not one: math-verify's
    last-number fallback accepts such texts among the committed eval completions (docs/grading.md).
    """
    text = text.strip()
    if not text or re.search(r"\b(?:answer|is|are|equals|be)\s*$|[=:]\s*$", text, re.IGNORECASE):
        return None  # "... So the answer": cut off before stating it
    ends_a_sentence = re.search(r"[.!?$)\]}]\s*$", text) is not None
    if _RETRACTION.match(re.split(r"(?<=[.!?])\s+", text)[-1]):
        return None  # "The total is 42. Let me reconsider the problem.": the value is taken back
    if len(text) <= 200 and "\n" not in text:
        if not ends_a_sentence and _prose_words(text) > 6:
            return None  # "we have x = 42 and then adding the remaining": cut off mid-sentence
        return _without_trailing_clause(text)
    if not ends_a_sentence or re.search(r"(?:^|\n)\s*\d+\.\s*$", text):
        return None
    lines = [line for line in text.split("\n") if line.strip()]
    last_line = lines[-1][-600:]
    if re.match(r"\s*(?:\\\[|\$\$)", last_line) and len(lines) > 1:  # "Therefore the matrix is" + a display
        last_line = f"{lines[-2][-600:]} {last_line}"
    markers = list(_CONCLUSION.finditer(last_line))
    if not markers:
        return None
    # the last marker that a value follows: "Therefore, there are 42 apples in total." is not about "in total."
    valued = [m for m in markers if re.search(r"[\d$\\]", last_line[m.end():])]
    return _without_trailing_clause(last_line[(valued or markers)[-1].start():])


_RETRACTION = re.compile(r"\s*(?:wait|hmm+|oops|but wait|let me (?:re\w+|try again|check again|think again|double[- ]check)|"
                         r"I (?:made a mistake|was wrong)|that(?:'s| is) (?:wrong|not right))\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|never|neither|nor|cannot)\b|n't\b", re.IGNORECASE)


def _prose_answer(completion: str, region: str, reference: str) -> _Extraction | None:
    """An answer a conclusion states in words, where math-verify finds no math: "Hence there are four
    solutions." (one count in words, no digits), "The function is odd." (ending in the reference's words,
    with no negation), "Yes, it is possible." (for a yes/no reference)."""
    sentence = re.split(r"(?<=[.!?])\s+", region.strip())[-1].strip().rstrip(".!? ")
    reference = _unwrap_text(reference).replace("$", "").strip().rstrip(".")
    answer = None
    if reference.casefold() in ("yes", "no") and (m := re.match(r"\s*(yes|no)\s*[,.!]", sentence + ".", re.I)):
        answer = m.group(1)
    elif "$" in sentence or re.search(r"\d", sentence) or _NEGATION.search(sentence):
        return None
    elif _WORDS.match(reference) and re.search(r"(?<![A-Za-z])" + re.escape(reference) + "$", sentence, re.I):
        answer = sentence[-len(reference):]
    elif len(counts := [m for m in _COUNT_PHRASE.finditer(sentence) if number_word_value(m.group(0)) is not None]) == 1:
        answer = counts[0].group(0)
    if answer is None:
        return None
    start = completion.rfind(answer)
    return _Extraction(answer, start, start + len(answer) if start >= 0 else -1, False)


def extract_final_answer(text: str) -> str | None:
    """The model's final answer: a Minerva "final answer is $X$. I hope it is correct.", else the last
    box, else the last "The answer is ..." sentence, else "#### x", else the whole text if it is only
    an answer ("$x = 3$", "28 percent"). None when no anchor marks an answer."""
    found = _extract(text)
    return found.answer if found else None


# ---------------------------------------------------------------- normalisation

_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
_SPACED_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?$")
_DOTTED_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(?:\.\d{3}){2,}(?:,\d+)?$")  # "1.000.000": two dots are no decimal point
# Units after a value: any word of 4+ letters ("dollars", "inches"), or a known short unit. Short
# words that are not units ("ab", "xy") stay, so "2 ab" is never read as 2.
_SHORT_UNITS = {
    "m", "cm", "mm", "km", "nm", "ft", "in", "yd", "mi", "g", "kg", "mg", "lb", "lbs", "oz", "s", "sec", "min",
    "h", "hr", "hrs", "yr", "yrs", "day", "ml", "mL", "L", "l", "cc", "sq", "cu", "mph", "kph", "kmh", "rad", "deg",
    "kWh", "cal", "K", "mol", "USD", "EUR", "gal", "qt", "pt", "ha", *SI_UNITS,
}
_NOT_UNITS = {"and", "or", "if", "for", "with", "where", "when", "then", "sqrt", "frac", "infty", "times",
              "cdot", "mod", "pmod", "else", "only", "none", "both", "each", "from", "over", "under", "than",
              "hundred", "thousand", "million", "billion", "trillion"}
# Words that scale a number ("1.5 million"): part of the value, never a unit to drop.
_SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_SCALED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(" + "|".join(_SCALES) + r")s?\b", re.IGNORECASE)
_SCALE_IN_TEXT = re.compile(r"\\(?:text|mathrm|textrm|mbox)\s*\{\s*(" + "|".join(_SCALES) + r")s?\s*\}", re.IGNORECASE)
_WORDS = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")
_YES_NO = re.compile(r"^(yes|no)(?:[,.;:!]\s*\S.*)?$", re.IGNORECASE)
_ALL_REALS = re.compile(r"(?:[a-z]\s*\\in\s*)?(?:\\mathbb\{R\}|(?:all|any|every)\s+real\s*(?:numbers?|values?|[a-z])?|"
                        r"(?:all|the)\s+reals|the\s+set\s+of\s+(?:all\s+)?real\s+numbers)", re.IGNORECASE)
# A set answer that says there is none; equal to the empty set.
_EMPTY_WORDS = re.compile(r"(?:there\s+(?:is|are)\s+)?(?:no\s+(?:real\s+)?(?:solutions?|such\s+\w+|values?)|none)",
                          re.IGNORECASE)
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?(?:[.:)]?\s+.*)?$")
_CHOICE_LIST = re.compile(r"\(?[A-E]\)?(?:\s*(?:,|and|,\s*and)\s*\(?[A-E]\)?)+")
_SET_BUILDER = re.compile(r"\\\{\s*[a-z]\s*(?:\\in\s*\\mathbb\{R\}\s*)?(?:\\mid|\||:)\s*(?P<relation>[^{}]*?(?:[<>=]|\\[lg]eq?\b)[^{}]*?)\s*\\\}")
_UNICODE = {"\u2009": " ", "\u202f": " ", "\u00a0": " ", "\u2007": " ", "\u2212": "-", "\u2013": "-", "\u00d7": "\\times ",
            "\u00b7": "\\cdot ", "\u22c5": "\\cdot ", "\u221e": "\\infty ", "\u222a": "\\cup ", "\u2229": "\\cap ",
            "\u2264": "\\le ", "\u2265": "\\ge ", "\u2260": "\\neq ", "\u03c0": "\\pi ", "\u221a": "\\sqrt ",
            "\u2205": "\\emptyset ", "\u00bd": "\\frac{1}{2}", "\u00bc": "\\frac{1}{4}", "\u00be": "\\frac{3}{4}"}
_SUPERSCRIPTS = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b", "0123456789-")


def _unwrap_text(s: str) -> str:
    """`\\text{x}` / `\\textbf{x}` / `\\mbox{x}` / `\\mathrm{x}` -> `x` (innermost first)."""
    pattern = re.compile(
        r"\\(?:text|textbf|textit|textrm|textnormal|mbox|mathrm|mathbf|mathit|operatorname|boldsymbol)\s*\{([^{}]*)\}"
    )
    previous = None
    while previous != s:
        previous, s = s, pattern.sub(r"\1", s)
    return s


def _strip_units(s: str) -> str:
    """Unit words after a value, with exponents and "per" parts: "5 cm^2" -> "5", "3\\text{ m/s}" -> "3".

    The exponent belongs to the unit: "5\\text{ cm}^2" is 5, never 25.
    """
    if (m := TEXT_UNITS.match(s)) and not set(m.group("units").lower().split()) & _NOT_UNITS:
        return m.group("value").strip()
    m = TRAILING_UNITS.match(s)
    if not m:
        return s
    words = re.findall(r"[A-Za-z]+", m.group("units"))
    short_ok = {w for w in words if w in _SHORT_UNITS and (len(w) > 1 or m.group("gap"))}
    if any(w.lower() in _NOT_UNITS or (len(w) < 4 and w not in short_ok) for w in words if w != "per"):
        return s
    value = m.group("value").strip()
    return value if value and value != "-" else s


def _plain_number(value: Fraction) -> str:
    """A terminating value as digits ("1500000", "2.5"); other fractions as "p/q"."""
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as context:
        context.prec = 60
        text = str(Decimal(value.numerator) / Decimal(value.denominator))
    return text if Fraction(text) == value else f"{value.numerator}/{value.denominator}"


def normalize_answer(answer: str) -> tuple[str, bool]:
    """A conservative canonical form of an answer string, and whether it carried a percent sign.

    Only rewrites that cannot turn a wrong answer into a right one: layout, wrappers, units after
    a value, thousands separators, trailing zeros.
    """
    s = answer.strip()
    for char, replacement in _UNICODE.items():
        s = s.replace(char, replacement)
    s = re.sub(r"[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u207b]+", lambda m: "^{" + m.group(0).translate(_SUPERSCRIPTS) + "}", s)
    s = s.replace("\\$", "").replace("$", "")
    if bold := re.fullmatch(r"\*\*(.+)\*\*|__(.+)__", s.strip()):  # markdown bold around the whole answer
        s = bold.group(1) or bold.group(2)
    s = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    if "\\\\" in s and not re.search(r"(?<!\\)\\[a-zA-Z]", s):  # every command escaped twice: `\\\\frac`
        s = s.replace("\\\\", "\\")
    s = re.sub(r"(\d),\s*\\!\s*(?=\d{3})", r"\1,", s)  # `32,\\! 349`
    s = re.sub(r"\\(?:display|text|script|scriptscript)style|\\!|\\limits", "", s)
    s = re.sub(r"(\d)\s*\{,\}\s*(?=\d)", r"\1,", s)  # 1{,}000 and the decimal comma 3{,}5
    s = without_latex_spacing(s)
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = re.sub(r"\s*(?:\\pmod\s*\{\s*\d+\s*\}|\\pmod\s*\d+|\(\s*(?:\\text\s*\{\s*mod\s*\}|\\bmod|\\mod|mod)\s*\d+\s*\))$",
               "", s)  # "2 \pmod{5}": the residue is the answer
    s = re.sub(r"\\overline\s*\{\s*([A-Z]{2,3})\s*\}", r"\1", s)  # the segment \overline{BC} is named BC
    s = re.sub(r"(?<![\\A-Za-z])pi(?![A-Za-z])", r"\\pi ", s)  # plain-text pi ("pi/2"), which LaTeX reads as p*i
    s = re.sub(r"\\log\s*_\s*(?:e|\{\s*e\s*\})(?![a-zA-Z])", r"\\ln", s)  # log base e is ln; a bare \log is math-verify's base 10
    s = re.sub(r"\\(?:mathrm|text|operatorname|mathit|textrm)\s*\{\s*([ie])\s*\}", r"\1", s)  # upright i, e: constants, never units
    s = re.sub(r"\\var(epsilon|phi|theta|rho|sigma|pi)(?![A-Za-z])", r"\\\1", s)  # \varepsilon is \epsilon
    if re.search(r"\\(?:sin|cos|tan|cot|sec|csc)\b", s):  # sin 30° is sin(pi/6): an angle in degrees stays one
        s = re.sub(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree)", r"(\\frac{\1\\pi}{180})", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree", "", s)
    s = re.sub(r"\s*\b(?:degrees?|deg)\b\.?\s*$", "", s)
    percent = bool(re.search(r"\\?%|\\percent\b|\b(?:percent|percentage|pct)\b", s))
    s = re.sub(r"\\?%|\\percent\b|\s*\b(?:percent|percentage|pct)\b", "", s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    s = _SCALE_IN_TEXT.sub(r" \1", s)  # `1.5 \\text{ million}`: a scale word, not a unit
    s = _SCALED.sub(lambda m: _plain_number(Fraction(m.group(1)) * _SCALES[m.group(2).lower()]), s)
    s = _strip_units(s)  # `5\\text{ cm}^2` while the unit is still marked as text
    s = _unwrap_text(s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if _CHOICE_LIST.fullmatch(s):  # "(B), (D)" is "B, D"
        s = re.sub(r"\(([A-E])\)", r"\1", s)
    if set_builder := _SET_BUILDER.fullmatch(s):  # "\{x \mid x \ge 2\}": the relation says which interval
        s = set_builder.group("relation").strip()
    s = re.sub(r"\\varnothing|\\empty\b", r"\\emptyset", s)
    if re.fullmatch(r"\\?\{\s*\\?\}", s):  # `\{\}`: the empty set written as braces
        s = "\\emptyset"
    if _ALL_REALS.fullmatch(s):
        s = "(-\\infty, \\infty)"
    s = re.sub(r"(?<![A-Za-z\\])oo(?![A-Za-z])", r"\\infty", s)  # SymPy's plain-text infinity
    if (count := number_word_value(s)) is not None:  # "two" is 2, as an answer on its own only
        s = str(count)
    elif (part := fraction_word_value(s)) is not None:  # "three-fourths"
        s = f"\\frac{{{part.numerator}}}{{{part.denominator}}}"
    s = _ORDINAL.sub(r"\1", s)  # "12^{\text{th}}", "21st": the place is the number
    if _THOUSANDS.match(s) or _SPACED_THOUSANDS.match(s):
        s = s.replace(",", "").replace(" ", "")
    elif _DOTTED_THOUSANDS.match(s):
        s = s.replace(".", "").replace(",", ".")
    s = _strip_units(s)
    if _THOUSANDS.match(s) or _SPACED_THOUSANDS.match(s):
        s = s.replace(",", "").replace(" ", "")
    if _NUMBER.match(s):
        if "." in s:
            s = s.rstrip("0").rstrip(".") or "0"
        s = re.sub(r"^(-?)0+(?=\d)", r"\1", s)  # AIME keys such as "025"
        if s in ("-0", "", "-"):
            s = "0"
    return s, percent


# ---------------------------------------------------------------- numbers and precision

_SCIENTIFIC = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:[eE]\s*([+-]?\d+)|(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?)$")
_FRACTION = re.compile(r"^(-?)\s*\\frac\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}$|^(-?)\s*\\frac(\d)(\d)$")
_SLASH = re.compile(r"^(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)$")
_MIXED = re.compile(r"^(-?)(\d+)\s*\\frac\s*\{(\d+)\}\s*\{(\d+)\}$")
_MIXED_PLAIN = re.compile(r"^(-?)(\d+)\s+(\d+)/(\d+)$")  # "3 1/2"
_POWER_OF_TEN = re.compile(r"^10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?$")
# A repeating decimal: 0.1\overline{6}, 0.\bar{3}, 0.\dot{3}, 0.(3)
_REPEATING = re.compile(r"^(-?)(\d*)\.(\d*)(?:\\(?:overline|bar|dot)\s*\{\s*(\d+)\s*\}|\\(?:overline|bar|dot)\s*(\d)|\((\d+)\))$")
# A decimal cut short with an ellipsis: 0.333..., 3.1415\ldots (its value is known to the digits shown)
_ELLIPSIS_DECIMAL = re.compile(r"(-?\d*\.\d+)\s*(?:\.{3,4}|\\[lc]?dots\.?|\u2026)")


def _as_number(s: str) -> Fraction | None:
    """The exact value of a normalised plain number, or None if `s` is anything else."""
    s = s.strip()
    try:
        if _NUMBER.match(s):
            return Fraction(s)
        if m := _SCIENTIFIC.match(s):
            exponent = int(m.group(2) if m.group(2) is not None else m.group(3))
            return Fraction(m.group(1)) * Fraction(10) ** exponent if abs(exponent) < 400 else None
        if m := _POWER_OF_TEN.match(s):
            return Fraction(10) ** int(m.group(1)) if abs(int(m.group(1))) < 400 else None
        if m := _FRACTION.match(s):
            sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5), m.group(6))
            value = Fraction(num) / Fraction(den)
            return -value if sign else value
        if m := _SLASH.match(s):
            return Fraction(m.group(1)) / Fraction(m.group(2))
        if m := _MIXED.match(s) or _MIXED_PLAIN.match(s):
            if m.re is _MIXED_PLAIN and int(m.group(3)) >= int(m.group(4)):
                return None  # "3 5/2" is no mixed number
            value = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
            return -value if m.group(1) else value
        if m := _REPEATING.match(s):
            sign, whole, fixed = m.group(1), m.group(2) or "0", m.group(3)
            repetend = m.group(4) or m.group(5) or m.group(6)
            tail = (int(fixed or "0") + Fraction(int(repetend), 10 ** len(repetend) - 1)) / 10 ** len(fixed)
            return -(int(whole) + tail) if sign else int(whole) + tail
    except (ZeroDivisionError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class Precision:
    """A precision the problem or the reference states: decimal places, or significant figures."""

    decimals: int | None = None
    significant: int | None = None

    def places_for(self, value: Fraction) -> int:
        if self.decimals is not None:
            return self.decimals
        magnitude = math.floor(math.log10(abs(value))) if value else 0
        return (self.significant or 1) - 1 - magnitude


_PLACE_NAMES = {"tenth": 1, "hundredth": 2, "thousandth": 3, "ten-thousandth": 4, "ten thousandth": 4,
                "hundred-thousandth": 5, "millionth": 6, "whole number": 0, "integer": 0, "unit": 0, "one": 0,
                "whole": 0, "cent": 2, "dollar": 0, "percent": 0, "degree": 0, "ten": -1, "hundred": -2,
                "thousand": -3}
_NEAREST = re.compile(r"nearest\s+(ten[- ]thousandth|hundred[- ]thousandth|\w+(?: number)?)", re.IGNORECASE)
_DECIMAL_PLACES = re.compile(
    r"(\d+|one|two|three|four|five|six)\s+(?:decimal\s+(?:places?|digits?)|d\.\s?p\.|places? after the decimal)",
    re.IGNORECASE)
_SIGNIFICANT = re.compile(r"(\d+|one|two|three|four|five|six)\s+significant\s+(?:figures?|digits?)|(\d+)\s+s\.f\.",
                          re.IGNORECASE)
_ONES_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
               "sixteen seventeen eighteen nineteen").split()
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_word_value(text: str) -> int | None:
    """A count written in words: "seven" -> 7, "Twenty-five" / "twenty five" -> 25, "one hundred and six"
    -> 106, "two thousand twenty" -> 2020; else None."""
    words = [word for word in re.split(r"[- ]+", text.strip().lower()) if word and word != "and"]
    if not words or not all(word in _COUNT_WORDS for word in words) or text.strip().lower().startswith("and"):
        return None
    total = group = 0
    previous, last_scale = None, None
    for word in words:
        if word in _ONES_WORDS or word in _TENS_WORDS:
            value = _ONES_WORDS.index(word) if word in _ONES_WORDS else 20 + 10 * _TENS_WORDS.index(word)
            if previous in _ONES_WORDS or (previous in _TENS_WORDS and not 0 < value < 10) or (value == 0 and previous):
                return None  # "seven three", "twenty twelve", "twenty zero"
            group += value
        elif word == "hundred":
            if not 0 < group < 10 or previous == "hundred":
                return None
            group *= 100
        else:  # a scale: thousand, million
            scale = _SCALE_WORDS[word]
            if group == 0 or (last_scale is not None and scale >= last_scale):  # "one thousand two million"
                return None
            total, group, last_scale = total + group * scale, 0, scale
        previous = word
    return total + group


_SCALE_WORDS = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_COUNT_WORDS = frozenset(_ONES_WORDS) | frozenset(_TENS_WORDS) | {"hundred"} | frozenset(_SCALE_WORDS)
_COUNT_PHRASE = re.compile(r"\b(?:{0})(?:(?:[- ]|\s+and\s+)(?:{0}))*\b".format("|".join(sorted(_COUNT_WORDS, key=len, reverse=True))),
                           re.IGNORECASE)
_FRACTION_WORDS = {"half": 2, "halve": 2, "third": 3, "fourth": 4, "quarter": 4, "fifth": 5, "sixth": 6, "seventh": 7,
                   "eighth": 8, "ninth": 9, "tenth": 10}


def fraction_word_value(text: str) -> Fraction | None:
    """A fraction written in words: "three-fourths" -> 3/4, "one half" / "a half" -> 1/2; else None."""
    m = re.fullmatch(r"(?:an?|(?P<count>[a-z]+))[- ](?P<part>[a-z]+?)s?", text.strip().lower())
    if m is None or m.group("part") not in _FRACTION_WORDS:
        return None
    count = number_word_value(m.group("count")) if m.group("count") else 1
    if count is None or count == 0:
        return None
    return Fraction(count, _FRACTION_WORDS[m.group("part")])


def stated_precision(problem: str | None, reference: str) -> Precision | None:
    """The precision an answer is to be compared at, if the problem or the reference states one.

    "to the nearest tenth" -> 1 decimal; "rounded to 2 decimal places" -> 2; "3 significant figures";
    a reference written `\\approx 3.14` -> its own decimals.
    """
    for text in (problem or "", reference):
        for m in _DECIMAL_PLACES.finditer(text):
            if _asks_for_the_answer(text, m):
                return Precision(decimals=int(m.group(1)) if m.group(1).isdigit() else number_word_value(m.group(1)))
        for m in _SIGNIFICANT.finditer(text):
            if _asks_for_the_answer(text, m):
                word = m.group(1) or m.group(2)
                return Precision(significant=int(word) if word.isdigit() else number_word_value(word))
        for m in _NEAREST.finditer(text):
            name = m.group(1).lower().rstrip("s")
            name = re.sub(r"s number$", " number", name)
            first = name.split()[0].rstrip("s")
            places = _PLACE_NAMES.get(name, _PLACE_NAMES.get(first))
            if places is not None and _asks_for_the_answer(text, m):
                return Precision(decimals=places)
    approx = re.match(r"^\s*(?:\\approx|≈|~)\s*(-?\d+(?:\.(\d+))?)\s*$", reference)
    if approx:
        return Precision(decimals=len(approx.group(2) or ""))
    return None


_ROUNDS_A_GIVEN_NUMBER = re.compile(r"(?:\d|\$|\})\s*,?\s*(?:(?:when\s+|is\s+|are\s+)?rounded\s+)?to\s+(?:the\s+)?$")
_STATES_A_ROUNDED_VALUE = re.compile(r"^[\w -]{0,30}?,?\s*(?:is|was|are|were|equals|gives|becomes)\b", re.IGNORECASE)
_QUESTION = re.compile(r"\?|^\s*(?:find|compute|determine|calculate|evaluate|what|how|which)\b", re.IGNORECASE)


def _asks_for_the_answer(problem: str, phrase: re.Match) -> bool:
    """Is this precision phrase the answer's ("What is x, to the nearest tenth?"), not the story's?

    A problem also rounds its own data ("Alice rounds 1234 to the nearest hundred"), states a rounded
    value ("a number rounded to the nearest ten is 40") or describes a process before its question
    ("she rounds every price to the nearest dollar. How much will she make?"); the answer is then exact.
    """
    before, after = problem[: phrase.start()], problem[phrase.end():]
    if _ROUNDS_A_GIVEN_NUMBER.search(before) or _STATES_A_ROUNDED_VALUE.match(after):
        return False
    later_sentences = re.split(r"(?<=[.?!])\s+", after)[1:]  # the sentences after the phrase's own
    return not any(_QUESTION.search(sentence) and "answer" not in sentence.lower() for sentence in later_sentences)


def _rounded(value: Fraction, places: int) -> Decimal:
    with localcontext() as context:
        context.prec = 60
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _shown_digits(raw: str) -> tuple[str, int] | None:
    """A decimal cut short with an ellipsis ("0.666...", "3.1415\\ldots"): its digits and decimal places."""
    m = _ELLIPSIS_DECIMAL.fullmatch(raw.replace("$", "").strip())
    return (m.group(1), len(m.group(1).split(".")[1])) if m else None


def _agrees_with_shown_digits(digits: str, places: int, other: Fraction) -> bool:
    """Does `other` read as `digits` to the places shown, cut off or rounded?"""
    quantum = Fraction(1, 10**places)
    return int(other / quantum) * quantum == Fraction(digits) or _rounded(other, places) == Decimal(digits)


def _numbers_equal(pred: Fraction, ref: Fraction, precision: Precision | None, inexact: bool) -> bool:
    """Exact values (integers, fractions) must be equal, or agree at a stated precision.

    A side written as a decimal may stand for a value that no decimal ends: 0.333333 for 1/3 differs by
    1e-6 relative. Two values that decimals do end are both written in full, so they differ only by a
    float's noise (0.30000000000000004 for 0.3, 2999.0000001 for 2999): 1e-9 relative, so 12345.66 is
    not $12,345.67 and 1000000.5 is not 1000000. The
    tolerance is relative on both counts: 1e-9 is not 0, and 3.2e-19 is not 1.6e-19.
    """
    if pred == ref:
        return True
    if precision is not None:
        places = precision.places_for(ref)
        return _rounded(pred, places) == _rounded(ref, places)
    tolerance = Fraction(1, 10**9) if _terminates(pred) and _terminates(ref) else Fraction(1, 10**6)
    return inexact and abs(pred - ref) <= tolerance * max(abs(pred), abs(ref))


def _terminates(value: Fraction) -> bool:
    """Does a decimal end this value (its denominator has no prime but 2 and 5)?"""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    return denominator == 1


# ---------------------------------------------------------------- structure: lists, relations, choices


def _split_top_level(s: str) -> list[str]:
    """Split at commas (and `;`) outside any brackets: "1, (2,3)" -> ["1", "(2,3)"]."""
    parts, depth, current = [], 0, []
    i = 0
    while i < len(s):
        char = s[i]
        if s.startswith("\\{", i) or s.startswith("\\}", i):
            depth += 1 if s[i + 1] == "{" else -1
            current.append(s[i : i + 2])
            i += 2
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char in ",;" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current).strip())
    return parts


_ENCLOSURES = (("\\{", "\\}", "set"), ("(", ")", "tuple"), ("[", "]", "tuple"), ("[", ")", "interval"),
               ("(", "]", "interval"))


def _as_collection(s: str) -> tuple[str, list[str]] | None:
    """("set" | "tuple" | "interval" | "list", elements) when `s` is a comma list, else None."""
    for opening, closing, kind in _ENCLOSURES:
        if s.startswith(opening) and s.endswith(closing) and len(s) > len(opening) + len(closing):
            inner = s[len(opening) : len(s) - len(closing)]
            if _balanced(inner):
                parts = _split_top_level(inner)
                if len(parts) > 1 and all(parts):
                    return (kind if (opening, closing) != ("[", "]") or kind != "tuple" else "tuple"), parts
    parts = _split_top_level(s)
    if len(parts) > 1 and all(parts):
        return "list", parts
    return None


_MATRIX = re.compile(r"^\\begin\{([pbBv]?matrix)\}(?P<body>.*)\\end\{\1\}$", re.DOTALL)
_ANGLE_VECTOR = re.compile(r"^\\langle(?P<body>.*)\\rangle$", re.DOTALL)


_TRANSPOSE = re.compile(r"\s*\^\s*(?:\{\s*(?:T|\\top|\\intercal|\\mathsf\{T\})\s*\}|T|\\top|\\intercal)$")


def _vector_as_tuple(s: str) -> str | None:
    """"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}" or "\\langle 1, 2 \\rangle" -> "(1, 2)": a vector
    written as a one-column (or one-row) matrix, in angle brackets or as a transposed tuple `(1, 2)^T`,
    as the tuple of its entries."""
    s = s.strip()
    if (transposed := _TRANSPOSE.sub("", s)) != s:
        return _vector_as_tuple(transposed) or (_bracketed_as_tuple(transposed) if _as_collection(transposed) else None)
    if m := _ANGLE_VECTOR.match(s):
        return f"({m.group('body').strip()})"
    if m := _MATRIX.match(s):
        rows = [row.strip() for row in re.split(r"\\\\", m.group("body")) if row.strip()]
        cells = [[cell.strip() for cell in row.split("&")] for row in rows]
        if len(cells) > 1 and all(len(row) == 1 for row in cells):
            return "(" + ", ".join(row[0] for row in cells) + ")"
        if len(cells) == 1 and len(cells[0]) > 1:
            return "(" + ", ".join(cells[0]) + ")"
    return None


_UNIT_VECTOR_TERM = re.compile(
    r"\s*(?P<sign>[+-])?\s*(?P<coefficient>(?:\{[^{}]*\}|[^+\-{}])*?)\s*(?:\\cdot|\*)?\s*"  # a sign in braces: \frac{-1}{2}
    r"\\(?:mathbf|hat|vec|boldsymbol|mathit)\s*\{?\s*(?P<axis>[ijk])\s*\}?"
)


def _unit_vectors_as_tuple(s: str, size: int) -> str | None:
    """"3\\mathbf{i} - 2\\mathbf{j}" -> "(3, -2)" (or "(3, -2, 0)" for a vector of 3 entries): a vector
    written with the unit vectors i, j, k (`\\mathbf`, `\\hat`, `\\vec`), as the tuple of its entries."""
    s = s.replace("$", "").strip().rstrip(".")
    entries: dict[str, str] = {}
    position = 0
    while position < len(s):
        m = _UNIT_VECTOR_TERM.match(s, position)
        if m is None or m.group("axis") in entries or (position and not m.group("sign")):
            return None
        coefficient = m.group("coefficient").strip() or "1"
        entries[m.group("axis")] = f"-{coefficient}" if m.group("sign") == "-" else coefficient
        position = m.end()
    if not entries or ("k" in entries and size < 3) or size not in (2, 3):
        return None
    return "(" + ", ".join(entries.get(axis, "0") for axis in "ijk"[:size]) + ")"


def _bracketed_as_tuple(s: str) -> str:
    """"[1, 2]" -> "(1, 2)", for a side compared with a vector, where square brackets are not a closed interval."""
    return f"({s[1:-1]})" if s.startswith("[") and s.endswith("]") else s


def _balanced(s: str) -> bool:
    depth = 0
    for char in s.replace("\\{", "{").replace("\\}", "}"):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth < 0:
            return False
    return depth == 0


_ASSIGNMENT = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?|\\[a-zA-Z]+)\s*(?:=|\\coloneqq)\s*(?P<value>[^=<>]+)$")
# "3 = x", "10 = f(3)": the value first; only a value without letters (`x + 1 = y` is an equation)
_REVERSED_ASSIGNMENT = re.compile(
    r"^\s*(?P<value>(?:[^=<>A-Za-z]|\\(?:frac|dfrac|tfrac|sqrt|pi|cdot|times)\b)+?)\s*=\s*"
    r"(?:[A-Za-z](?:_\{?\w+\}?)?(?:\([^()=]*\))?|\\[a-zA-Z]+)\s*$")
_ORDINAL = re.compile(r"^(\d+)\s*(?:\^\s*\{\s*(?:\\(?:text|mathrm)\s*\{\s*)?(?:st|nd|rd|th)\s*\}?\s*\}|st|nd|rd|th)$")


def _without_assignment(s: str) -> str:
    """"x = 3" -> "3": a leading variable assignment, when the value side has no other relation."""
    m = _ASSIGNMENT.match(s) or _REVERSED_ASSIGNMENT.match(s)
    return m.group("value").strip() if m else s


_OPTION_WITH_VALUE = re.compile(r"^(?:\(([A-E])\)|([A-E])[.:)])\s*(?P<value>\S.*)$")


def _option_text(s: str) -> str:
    """An answer as an option is written, without math delimiters, text wrappers, bold or LaTeX spacing."""
    s = _unwrap_text(s.replace("$", "")).strip().strip("*").strip()
    return without_latex_spacing(s)  # "\\textbf{(C)}\\ 12"


def _option_with_value(s: str) -> tuple[str, str] | None:
    """"\\textbf{(C)} 12" -> ("C", "12"): an option letter (in brackets or before ".", ":", ")") and its text."""
    m = _OPTION_WITH_VALUE.match(_option_text(s))
    return (m.group(1) or m.group(2), m.group("value").strip()) if m else None


def _named_values(items: list[str]) -> dict[str, str] | None:
    """{"a": "2", "b": "3"} for ["a = 2", "b = 3"]; None unless every item assigns a distinct name."""
    matches = [_ASSIGNMENT.match(item) for item in items]
    if not all(matches):
        return None
    named = {m.group(1).replace(" ", ""): m.group("value").strip() for m in matches}
    return named if len(named) == len(items) else None


_ASKED_ORDER = re.compile(r"ordered\s+(?:pair|triple|quadruple|tuple)s?\s*\$?\s*(?:\\left)?\s*\(\s*"
                          r"(?P<names>[A-Za-z](?:\s*,\s*[A-Za-z])+)\s*(?:\\right)?\s*\)", re.IGNORECASE)


def _both_signs(side: str, other: str) -> str:
    """"x = \\frac{-1 \\pm \\sqrt{5}}{2}" or "0, \\pm 2" with each plus-minus value as its two values, when the
    other side writes them out ("-2, 0, 2"): a list, or a set in braces, of the values."""
    if "\\pm" not in side or "\\pm" in other or _as_collection(other) is None:
        return side
    braced = re.fullmatch(r"\s*\\\{(?P<items>.*)\\\}\s*", side)
    items = _split_top_level(braced.group("items") if braced else side)
    values = []
    for item in (_without_assignment(item.strip()) for item in items):
        if item.count("\\pm") > 1:
            return side
        values += [item.replace("\\pm", "+"), item.replace("\\pm", "-")] if "\\pm" in item else [item]
    listed = ", ".join(re.sub(r"^\+\s*", "", value) for value in values)  # "+ 2" is 2
    return f"\\{{{listed}\\}}" if braced else listed


def _named_as_tuple(ref: str, pred: str) -> str:
    """"a=-1, b=2" as "(-1, 2)" against a tuple without names, "(2, -1)": the values in the order written."""
    ref_collection, pred_collection = _as_collection(ref), _as_collection(pred)
    if ref_collection is None or pred_collection is None or pred_collection[0] != "tuple":
        return ref
    named = _named_values(ref_collection[1])
    if named is None or _named_values(pred_collection[1]) is not None or len(named) != len(pred_collection[1]):
        return ref
    return "(" + ", ".join(named.values()) + ")"


_COORDINATE_NAMES = (frozenset("xy"), frozenset("xyz"), frozenset("ab"), frozenset("abc"), frozenset("mn"),
                     frozenset("pq"))


def _in_asked_order(pred: str, ref: str, problem: str | None) -> str | None:
    """"b = 3, a = 2" as "(2, 3)" when the reference is a tuple: named values say which is which. The order is the
    one the problem asks for ("the ordered pair (a, b)"), else the alphabetical one of coordinate names
    ("y = 3, x = 2" is the point (2, 3))."""
    ref_collection = _as_collection(ref)
    if ref_collection is None or ref_collection[0] != "tuple":
        return None
    pred_collection = _as_collection(pred)
    named = _named_values(pred_collection[1] if pred_collection else _split_top_level(pred))
    if named is None:
        return None
    asked = _ASKED_ORDER.search(problem) if problem else None
    if asked is not None:
        names = [name.strip() for name in asked.group("names").split(",")]
    elif frozenset(named) in _COORDINATE_NAMES:
        names = sorted(named)
    else:
        return None
    if sorted(named) != sorted(names) or len(names) != len(ref_collection[1]):
        return None
    return "(" + ", ".join(named[name] for name in names) + ")"


def _choice_letter(s: str) -> str | None:
    """The option letter an answer names: "(B)", "\\textbf{(B)} 12", "B) 12", "Option B", "**B**"."""
    s = re.sub(r"^\\text(?:bf)?\s*|^(?:option|choice)\s+", "", _option_text(s), flags=re.IGNORECASE)
    m = _CHOICE.match(s)
    if m is None or re.search(r"\(\s*[A-E]\s*\)|\b[A-E]\)|\b(?:and|or)\s+[A-E]\b", s[m.end(1) + 1:]):
        return None  # "(B) and (C)" names two options, not one
    return m.group(1).upper()


# ---------------------------------------------------------------- the symbolic step, in a worker process


_WARM_UP_LATEX = (
    "1", "-\\frac{3}{4}", "2\\sqrt{3}", "\\frac{\\sqrt{2}}{2}", "3\\pi", "x^2+1", "x = 3", "x \\le 5", "a < b < c",
    "(-\\infty, 2] \\cup (3, \\infty)", "[0, 1)", "(1, 2)", "\\{1, 2\\}", "1, 2, 3",
    "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\text{Evelyn}", "12\\%", "10^{5}", "\\sin x + \\cos y",
    "\\log_2 8", "e^{i\\pi}", "2 - 3i", "\\binom{5}{2}", "5!", "|x - 1|", "f(x) = 2x + 1", "x \\in [-2, 7]",
    "x > 5", "x < 5", "(-\\infty, 5)", "-2 \\le x \\le 7", "[-2, 7]", "(1, 3)", "{1,3}",
)


def _worker_loop() -> None:  # pragma: no cover - runs in the worker process
    """Answer JSON requests on stdin: {"gold", "pred", "places"} -> {"verdict": true | false | null}."""
    import logging

    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    logging.disable(logging.WARNING)
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    import functools

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    # One reference is graded against many samples: its parse is kept (sympy objects are immutable).
    cached = functools.lru_cache(maxsize=4096)(lambda text: tuple(parse(text, extraction_config=configs,
                                                                        parsing_timeout=None)))

    def parse_cached(text, extraction_config=None, parsing_timeout=None):
        return list(cached(text))

    parse_cached("$1$")
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request.get("op") == "warm":
                # ANTLR builds its parsing tables lazily: a first parse of each construct is slow.
                for latex, other in zip(_WARM_UP_LATEX, (*_WARM_UP_LATEX[1:], _WARM_UP_LATEX[0]), strict=True):
                    verify(parse_cached(f"${latex}$"), parse_cached(f"${other}$"), timeout_seconds=None,
                           allow_set_relation_comp=True)
                parse_cached("So the total is 1,000.5 dollars, or 3/4 of it.")
                reply = {"verdict": None}
            elif request.get("op") == "extract" and request.get("choices"):  # option letters, math-verify's way
                letters = StringExtractionConfig(strings=tuple(request["choices"]), lowercase=False)
                found = parse(request["text"], extraction_config=[letters], parsing_timeout=None)
                reply = {"extracted": next((f for f in found if isinstance(f, str)), None)}
            elif request.get("op") == "extract":
                found = parse_cached(request["text"])
                reply = {"extracted": next((f for f in found if isinstance(f, str)), None)}
                if request.get("gold") is not None and reply["extracted"]:  # spares a second round trip
                    gold = parse_cached(f"${request['gold']}$")
                    reply["verdict"] = _parsed_verdict(gold, found, request.get("places"), verify)
            else:
                reply = {"verdict": _symbolic_verdict(request["gold"], request["pred"], request.get("places"),
                                                      configs, parse_cached, verify)}
        except Exception:  # sympy internals: "could not decide" rather than a crash
            reply = {"verdict": None, "extracted": None}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _symbolic_verdict(gold_text, pred_text, places, configs, parse, verify) -> bool | str | None:  # pragma: no cover
    gold = parse(f"${gold_text}$", extraction_config=configs, parsing_timeout=None)
    pred = parse(f"${pred_text}$", extraction_config=configs, parsing_timeout=None)
    verdict = _parsed_verdict(gold, pred, places, verify)
    if verdict is not None:
        return verdict
    return "sympy" if _sympy_equal(gold_text, pred_text) else False


def _parsed_verdict(gold, pred, places, verify) -> bool | None:  # pragma: no cover - worker process
    """math-verify's verdict on two `parse` results, at a stated precision if any; None if one is empty."""
    import sympy

    gold_values = [g for g in gold if not isinstance(g, str)]
    pred_values = [p for p in pred if not isinstance(p, str)]
    if gold_values and pred_values:
        if verify(gold_values, pred_values, timeout_seconds=None, allow_set_relation_comp=True):
            return True
        if _equal_with_imaginary_unit(gold_values[0], pred_values[0]):
            return True
        if places is not None:  # a stated precision: compare the two values rounded to it
            g, p = gold_values[0], pred_values[0]
            if getattr(g, "is_number", False) and getattr(p, "is_number", False):
                quantum = sympy.Rational(1, 10**places) if places >= 0 else sympy.Integer(10 ** -places)
                g_r = sympy.Integer(sympy.floor(sympy.N(g, 30) / quantum + sympy.Rational(1, 2)))
                p_r = sympy.Integer(sympy.floor(sympy.N(p, 30) / quantum + sympy.Rational(1, 2)))
                return bool(g_r == p_r)
        return False
    return None


def _equal_with_imaginary_unit(gold, pred) -> bool:  # pragma: no cover - worker process
    """`i` read as the imaginary unit: "i" for `\\sqrt{-1}`, "-i" for `\\frac{1}{i}`. math-verify reads it as a
    variable. Only for two values that are numbers once `i` is the unit, so an index `i` never counts."""
    import sympy

    def with_unit(value):
        if not isinstance(value, sympy.Expr):
            return None
        return value.subs({s: sympy.I for s in value.free_symbols if s.name == "i"})

    gold_number, pred_number = with_unit(gold), with_unit(pred)
    if gold_number is None or pred_number is None or (gold_number == gold and pred_number == pred):
        return False
    if gold_number.free_symbols or pred_number.free_symbols:
        return False
    difference = gold_number - pred_number
    if sympy.simplify(difference) == 0:
        return True
    return abs(complex(sympy.N(difference, 40))) < 1e-30  # 2e^{i\\pi/3} for 1 + \\sqrt{3}i: simplify keeps the exponential


def _sympy_equal(reference: str, prediction: str) -> bool | None:  # pragma: no cover - worker process
    """Plain-text expressions (`2*sqrt(2)`, `x^2+1`) compared with sympy; None if either is unparsable."""
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
    except Exception:
        return None
    return bool(sympy.simplify(a - b) == 0)


class _Worker:
    """One worker process running `_worker_loop`, spoken to over pipes with a deadline on every reply."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from eval.grader import _worker_loop; _worker_loop()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0,
        )
        self.ready = False
        self.buffer = b""

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.process.stdout], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise BrokenPipeError("grader worker exited")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def wait_ready(self, deadline: float) -> bool:
        if not self.ready:
            line = self._read_line(deadline)
            self.ready = line == b"ready"
        return self.ready

    def ask(self, request: dict, deadline: float) -> dict | Literal["timeout"]:
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        line = self._read_line(deadline)
        if line is None:
            self.kill()
            return "timeout"
        return json.loads(line)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


_idle_workers: list[_Worker] = []
_workers_lock = threading.Lock()
# Each worker holds its own sympy and LaTeX parser in memory: at most this many, however many threads
# grade at once; a thread beyond them waits for one within its own deadline.
_MAX_WORKERS = min(8, max(2, os.cpu_count() or 2))
_worker_slots = threading.BoundedSemaphore(_MAX_WORKERS)


def _checkout_worker() -> _Worker:
    with _workers_lock:
        while _idle_workers:
            worker = _idle_workers.pop()
            if worker.alive:
                return worker
    return _Worker()


def _return_worker(worker: _Worker) -> None:
    if worker.alive:
        with _workers_lock:
            _idle_workers.append(worker)


def warm_up(wait: bool = False) -> None:
    """Start a worker process now, so that the first symbolic comparison does not wait for its imports.

    With `wait=True`, also block until it has parsed and compared one of each common construct once
    (ANTLR's tables fill on first use): for benchmarks and long runs, where first-use costs would
    otherwise land on the first grades.
    """
    with _workers_lock:
        if not _idle_workers:
            _idle_workers.append(_Worker())
    if wait:
        _ask_worker({"op": "warm"}, time.monotonic() + 120)


@atexit.register
def _stop_workers() -> None:
    with _workers_lock:
        for worker in _idle_workers:
            worker.kill()
        _idle_workers.clear()


def _ask_worker(request: dict, deadline: float) -> dict | Literal["timeout"] | None:
    """One request to a worker process under the deadline; None if the worker broke."""
    if time.monotonic() >= deadline or not _worker_slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
        return "timeout"
    try:
        worker = _checkout_worker()
    except OSError:
        _worker_slots.release()
        return None
    try:
        if not worker.wait_ready(deadline):
            return "timeout"  # still importing sympy: the worker stays for the next grade
        return worker.ask(request, deadline)
    except (BrokenPipeError, OSError, ValueError):
        worker.kill()
        return None
    finally:
        _return_worker(worker)
        _worker_slots.release()


def _symbolic(reference: str, prediction: str, precision: Precision | None,
              deadline: float) -> Literal["math_verify", "sympy", "mismatch", "timeout"]:
    places = precision.decimals if precision is not None else None
    reply = _ask_worker({"op": "verify", "gold": reference, "pred": prediction, "places": places}, deadline)
    if reply == "timeout":
        return "timeout"
    verdict = reply.get("verdict") if reply else None
    return "sympy" if verdict == "sympy" else "math_verify" if verdict else "mismatch"


def _math_verify_extraction(completion: str, deadline: float, choices: bool = False, gold: str | None = None,
                            places: int | None = None) -> tuple[str | None, bool | None] | Literal["timeout"]:
    """The answer math-verify's own extraction finds in unanchored text (LaTeX, then plain expressions,
    or for a multiple-choice reference an option letter A-E), and math-verify's verdict on it against
    `gold` when given (None when it could not decide)."""
    request = {"op": "extract", "text": completion[-_MAX_UNANCHORED_CHARS:], "gold": gold, "places": places}
    if choices:
        request["choices"] = list("ABCDE")
    reply = _ask_worker(request, deadline)
    if reply == "timeout":
        return "timeout"
    return (reply.get("extracted"), reply.get("verdict")) if reply else (None, None)


# ---------------------------------------------------------------- equivalence


# A space beside anything but a letter or digit is layout ("-b \\pm \\sqrt{...}"); between two ("2 3", "\\pi r") it may not be.
_LAYOUT_SPACE = re.compile(r"\s+(?![A-Za-z0-9])|(?<![A-Za-z0-9])\s+")


def _values_match(pred: str, ref: str, pred_percent: bool, ref_percent: bool,
                  precision: Precision | None) -> GradeMethod | None:
    """The cheap checks on normalised strings: a method if they decide, None if symbolic is needed."""
    if pred == ref or _LAYOUT_SPACE.sub("", pred) == _LAYOUT_SPACE.sub("", ref):
        return "exact"
    p, r = _as_number(pred), _as_number(ref)
    if p is not None and r is not None:
        inexact = "." in pred or "." in ref
        if _numbers_equal(p, r, precision, inexact):
            return "numeric"
        if pred_percent != ref_percent and (
            _numbers_equal(p / 100, r, precision, True) if pred_percent else _numbers_equal(p, r / 100, precision, True)
        ):
            return "numeric"
        return "mismatch"
    return None


def _decimal_comma_value(prediction: str) -> Fraction | None:
    """"3,5" / "3{,}5" / "0,125" read as a decimal: only asked when the reference is one number.

    Three digits ending in 0 after a non-zero whole part ("1,000", "3,500") are a thousands group: a
    decimal comma does not pad zeros, and reading "1,000" as 1 would accept a thousand for one."""
    if re.search(r",\s*\\!", prediction):
        return None  # `1,\!024`: LaTeX's thousands separator, never a decimal comma
    if european := re.fullmatch(r"\s*(-?\d{1,3}(?:\.\d{3})+),(\d+)\s*", prediction.replace("$", "")):  # "1.234,56"
        return Fraction(f"{european.group(1).replace('.', '')}.{european.group(2)}")
    s = re.sub(r"\\[!,]|\{,\}", ",", prediction.replace("$", "")).strip().rstrip(".")
    s = re.sub(r",+", ",", s)
    if grouped := re.fullmatch(r"(-?\d{1,3}(?:,\d{3})+),(\d{1,2}|\d{4,})", s):  # "1\,234{,}5": groups, then decimals
        return Fraction(f"{grouped.group(1).replace(',', '')}.{grouped.group(2)}")
    m = re.fullmatch(r"(-?\d+),(\d+)(?:\s*(?:\\times|\\cdot|\*)\s*10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?)?", s)  # "3,5\times10^{5}"
    if m is None:
        return None
    whole, fraction, exponent = m.groups()
    if len(fraction) == 3 and fraction.endswith("0") and whole.lstrip("-") != "0":
        return None
    scale = Fraction(10) ** int(exponent) if exponent and abs(int(exponent)) < 400 else 1
    return Fraction(f"{whole}.{fraction}") * scale


_MAX_PAIRED_ITEMS = 64  # above this, a set's elements are not compared all against all


def _collections_match(pred: str, ref: str, precision: Precision | None) -> GradeMethod | None:
    """Lists, sets and tuples whose elements are all decided by the cheap checks."""
    ref_collection, pred_collection = _as_collection(ref), _as_collection(pred)
    if ref_collection is None or pred_collection is None:
        return None
    (ref_kind, ref_items), (pred_kind, pred_items) = ref_collection, pred_collection
    unordered = {"set", "list"}
    if ref_kind in unordered and pred_kind not in unordered or ref_kind not in unordered and pred_kind != ref_kind:
        return None  # a point vs a set of solutions, an interval vs a tuple: math-verify decides
    if ref_kind not in unordered and (ref[0], ref[-1]) != (pred[0], pred[-1]):
        return "mismatch"  # (2, 3) is not [2, 3], nor [2, 3)
    if len(ref_items) != len(pred_items):
        return "mismatch"
    pred_named, ref_named = _named_values(pred_items), _named_values(ref_items)
    if pred_named and ref_named and pred_named.keys() == ref_named.keys():  # "b = 3, a = 2": by name, not order
        pred_items, ref_items = list(pred_named.values()), [ref_named[name] for name in pred_named]
        ref_kind = "tuple"
    pred_items = [_without_assignment(item) for item in pred_items]
    ref_items = [_without_assignment(item) for item in ref_items]
    if ref_kind not in unordered:  # a tuple or an interval: element i against element i
        in_order = [_values_match(p, r, False, False, precision) for p, r in zip(pred_items, ref_items, strict=True)]
        if None in in_order:
            return None
        return "numeric" if "mismatch" not in in_order else "mismatch"
    if len(ref_items) > _MAX_PAIRED_ITEMS:
        return _large_unordered_match(pred_items, ref_items, precision)
    verdicts: list[list[GradeMethod | None]] = [
        [_values_match(p, r, False, False, precision) for r in ref_items] for p in pred_items
    ]
    if any(v is None for row in verdicts for v in row):
        return None
    remaining = list(range(len(ref_items)))
    for row in verdicts:
        hit = next((j for j in remaining if row[j] != "mismatch"), None)
        if hit is None:
            return "mismatch"
        remaining.remove(hit)
    return "numeric"


def _large_unordered_match(pred_items: list[str], ref_items: list[str],
                           precision: Precision | None) -> GradeMethod | None:
    """A set or list too long to compare every element with every other (3,000 elements took a minute):
    numbers are paired in sorted order, which finds a matching whenever one exists, since "equal to a
    tolerance or a rounding" keeps order. Anything else goes to the symbolic step, under its deadline."""
    pred_values, ref_values = [_as_number(p) for p in pred_items], [_as_number(r) for r in ref_items]
    if None in pred_values or None in ref_values:
        return None
    inexact = any("." in item for item in (*pred_items, *ref_items))
    paired = zip(sorted(pred_values), sorted(ref_values), strict=True)  # type: ignore[type-var]
    return "numeric" if all(_numbers_equal(p, r, precision, inexact) for p, r in paired) else "mismatch"


_FUNCTION = re.compile(r"\\(?:arc)?(?:sin|cos|tan|cot|sec|csc)h?(?![a-zA-Z])|\\(?:log|ln|exp)(?![a-zA-Z])")
_BARE_BOUND = re.compile(r"^\s*(?:<|>|\\(?:le|ge|leq|geq|lt|gt|neq|ne)(?![a-zA-Z]))")
_RELATION_SIGN = re.compile(r"=|<|>|\\(?:approx|le|ge|leq|geq|lt|gt|neq|ne|in|to|equiv|sim)(?![a-zA-Z])")


_BOUND = r"(-?(?:\d+(?:\.\d+)?|\\frac\{-?\d+\}\{\d+\}|\d+/\d+))"
_LESS = {"<": ")", "\\lt": ")", "\\le": "]", "\\leq": "]", "\\leqslant": "]", "<=": "]"}
_MORE = {">": "(", "\\gt": "(", "\\ge": "[", "\\geq": "[", "\\geqslant": "[", ">=": "["}
_REL = r"(<=|>=|<|>|\\leqslant|\\geqslant|\\leq|\\geq|\\le|\\ge|\\lt|\\gt)"
_ONE_SIDED = re.compile(rf"^[A-Za-z]\s*{_REL}\s*{_BOUND}$")
_TWO_SIDED = re.compile(rf"^{_BOUND}\s*{_REL}\s*[A-Za-z]\s*{_REL}\s*{_BOUND}$")


def _relation_as_interval(s: str) -> str | None:
    """"x \\le 8" -> "(-\\infty, 8]", "2 < x \\le 7" -> "(2, 7]": the interval a one-variable inequality
    with numeric bounds describes (math-verify's own set-relation comparison costs a sympy solve).
    Inequalities joined by "or" are the union of theirs: "x < 2 or x > 3" -> "(-\\infty, 2) \\cup (3, \\infty)"."""
    parts = re.split(r"\s+or\s+|\s*\\(?:lor|vee)\s*", s.strip())
    if len(parts) > 1:
        intervals = [_relation_as_interval(part) for part in parts]
        return None if None in intervals else " \\cup ".join(intervals)
    if m := _ONE_SIDED.match(s):
        relation, bound = m.groups()
        if relation in _LESS:
            return f"(-\\infty, {bound}{_LESS[relation]}"
        return f"{_MORE[relation]}{bound}, \\infty)"
    if m := _TWO_SIDED.match(s):
        low, first, second, high = m.groups()
        if first in _LESS and second in _LESS:
            return f"{'(' if _LESS[first] == ')' else '['}{low}, {high}{_LESS[second]}"
    return None


def _intervals_match(pred: str, ref: str, precision: Precision | None) -> GradeMethod | None:
    """Two intervals "(a, b]", or unions of them in the same order: the same brackets and endpoints;
    None if either is not one."""
    def parts(s: str):
        if len(s) > 2 and s[0] in "([" and s[-1] in ")]" and len(items := _split_top_level(s[1:-1])) == 2:
            return s[0], s[-1], items
        return None

    pred_pieces = [parts(piece) for piece in pred.replace(" ", "").split("\\cup")]
    ref_pieces = [parts(piece) for piece in ref.replace(" ", "").split("\\cup")]
    if None in pred_pieces or None in ref_pieces:
        return None
    if len(pred_pieces) != len(ref_pieces):
        return "mismatch"
    verdicts = []
    for p, r in zip(pred_pieces, ref_pieces, strict=True):
        verdicts += [_values_match(a, b, False, False, precision) for a, b in zip(p[2], r[2], strict=True)]
        verdicts.append("numeric" if p[:2] == r[:2] else "mismatch")
    if None in verdicts:
        return None
    return "mismatch" if "mismatch" in verdicts else "numeric"


_IN_BASE = re.compile(r"^([0-9A-Za-z]+)(?:_\{?\(?(\d+)\)?\}?)?$")


def _base_numbers_match(pred: str, ref: str) -> GradeMethod | None:
    """Numbers written in a base ("2516_8", "1011_{2}"): their digits are not values, so they match when
    the digits do and the bases do not differ ("1011" for "1011_2": the base is the question's). None if
    either side is not a number in a base."""
    p, r = _IN_BASE.match(pred.replace(" ", "")), _IN_BASE.match(ref.replace(" ", ""))
    if p is None or r is None or not (p.group(2) or r.group(2)):
        return None
    same_base = p.group(2) is None or r.group(2) is None or int(p.group(2)) == int(r.group(2))
    return "exact" if same_base and p.group(1).upper() == r.group(1).upper() else "mismatch"


def _free_letters(s: str) -> set[str]:
    """Letters of `s` that name unknowns: not LaTeX commands, not the constants e and i."""
    bare = re.sub(r"\\[a-zA-Z]+|\\text\{[^}]*\}", " ", s)
    return set(re.findall(r"[A-Za-z]", bare)) - {"e", "i"}


_DEGREE_MARK = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![a-zA-Z])|\bdeg(?:rees?)?\b\.?\s*$")


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})\s*(?:([ap])\.?\s*m\.?)?$", re.IGNORECASE)


def _clock_readings(answer: str) -> tuple[set[int], bool] | None:
    """The minutes after midnight a clock time can mean, and whether it says a.m. or p.m.:
    "4:30 p.m." is {990}; "4:30" is {270, 990}, either half of the day; "16:30" is {990}."""
    m = _CLOCK.match(_unwrap_text(answer.replace("$", "")).strip())
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        return None
    hour, minute, half = int(m.group(1)), int(m.group(2)), (m.group(3) or "").lower()
    if half:
        return ({(hour % 12 + (12 if half == "p" else 0)) * 60 + minute} if 1 <= hour <= 12 else set()), True
    hours = {hour} if hour == 0 or hour > 12 else {hour % 12, hour % 12 + 12}
    return {h * 60 + minute for h in hours}, False


def _clock_match(prediction: str, reference: str) -> GradeMethod | None:
    """Times of day where a side says a.m. or p.m. ("4:30 PM" for "4:30 p.m.", "16:30" for "4:30 PM");
    None when either side is no clock time or neither names its half of the day (a ratio "3:4")."""
    pred, ref = _clock_readings(prediction), _clock_readings(reference)
    if pred is None or ref is None or not (pred[1] or ref[1]):
        return None
    return "exact" if pred[0] & ref[0] else "mismatch"


def _degrees_for_radians(prediction: str, reference: str, precision: Precision | None,
                         deadline: float) -> GradeMethod | None:
    """"\\frac{\\pi}{3} rad" for 60°: an angle marked in degrees against one marked in radians, compared
    in radians, as other units of one dimension are. None when the pair is not of this kind: an
    unmarked \\frac{\\pi}{6} for 30° stays wrong (the reference's unit is what the problem asked for)."""
    def in_degrees(s: str) -> bool:
        return bool(_DEGREE_MARK.search(s)) and not _FUNCTION.search(s)

    def in_radians(s: str) -> bool:
        return not _DEGREE_MARK.search(s) and (unit := unit_of(s)) is not None and unit.name == "rad"

    pred_degrees = in_degrees(prediction)
    if pred_degrees == in_degrees(reference):
        return None
    degree_side, radian_side = (prediction, reference) if pred_degrees else (reference, prediction)
    degrees = _as_number(normalize_answer(degree_side)[0]) if in_radians(radian_side) else None
    if degrees is None:
        return None
    as_radians = f"\\frac{{{degrees.numerator}\\pi}}{{{180 * degrees.denominator}}}"
    radians = normalize_answer(radian_side)[0]
    pred, ref = (as_radians, radians) if pred_degrees else (radians, as_radians)
    return _symbolic(ref, pred, precision, deadline)


_MEASURE_WORDS = frozenset({"square", "cubic", "sq", "cu"})


def _unit_words(answer: str) -> frozenset[str]:
    """The words written after a value ("12 \\text{ boys}" -> {"boy"}), singular and lower case, without "square"."""
    m = units_match(answer)
    if m is None:
        return frozenset()
    words = {word.lower() for word in re.findall(r"[A-Za-z]+", m.group("units"))} - _MEASURE_WORDS - {"per"}
    return frozenset(word[:-1] if len(word) > 3 and word.endswith("s") else word for word in words)


def _converted_match(pred: str, ref: str, pred_unit: Unit, ref_unit: Unit, precision: Precision | None) -> GradeMethod:
    """Values in two different known units: "120 minutes" for "2 hours" by converting the prediction's
    value; units of different dimensions ("15 m" for "15 s") never match."""
    factor = conversion_factor(pred_unit, ref_unit)  # 1 for the same unit: "5 cm^3" for "5 cm^2" has another power
    pred_value, ref_value = _as_number(pred), _as_number(ref)
    if factor is None or pred_value is None or ref_value is None:
        return "mismatch"
    return "numeric" if _numbers_equal(pred_value * factor, ref_value, precision, "." in pred + ref) else "mismatch"


def _match_method(prediction: str, reference: str, problem: str | None = None,
                  deadline: float | None = None, symbolic_verdict: bool | None = None) -> GradeMethod:
    if deadline is None:
        deadline = time.monotonic() + DEFAULT_TIME_LIMIT_S
    pred, pred_percent = normalize_answer(prediction)
    ref, ref_percent = normalize_answer(reference)
    if not pred:
        return "no_answer"
    if _BARE_BOUND.match(pred) and not _RELATION_SIGN.search(ref):
        return "mismatch"  # "\\ge 12" for 12: a bound on the answer, not the answer
    if (method := _clock_match(prediction, reference)) is not None:
        return method
    precision = stated_precision(problem, reference)
    if (method := _degrees_for_radians(prediction, reference, precision, deadline)) is not None:
        return method
    pred_unit, ref_unit = unit_of(prediction), unit_of(reference)
    if pred_unit and ref_unit and pred_unit != ref_unit:  # units are stripped from both sides, so "15 m"
        return _converted_match(pred, ref, pred_unit, ref_unit, precision)  # for "15 s" is caught here
    if not (pred_unit and ref_unit) and (words := _unit_words(prediction)) and (ref_words := _unit_words(reference)) \
            and words != ref_words:
        return "mismatch"  # "12 boys" for "12 girls", "300 K" for "300 J", "n \\ge 3 \\text{ even}" for "... odd"
    if precision is not None:
        ref = re.sub(r"^(?:\\approx|≈|~)\s*", "", ref)
        pred = re.sub(r"^(?:\\approx|≈|~)\s*", "", pred)
    pred_shown, ref_shown = _shown_digits(prediction), _shown_digits(reference)
    if shown := pred_shown or ref_shown:
        digits, places = shown
        cut_short_is_pred = pred_shown is not None
        other = _as_number(ref if cut_short_is_pred else pred)
        if other is not None:
            return "numeric" if _agrees_with_shown_digits(digits, places, other) else "mismatch"
        pred, ref = (digits, ref) if cut_short_is_pred else (pred, digits)  # "3.14159..." for \\pi: symbolic,
        precision = precision or Precision(decimals=places)  # at the places shown
    if re.search(r"\w_\{?\d+\}?", ref + " " + pred) and (method := _base_numbers_match(pred, ref)):
        return method
    comma_value, ref_value = _decimal_comma_value(prediction), _as_number(ref)
    if comma_value is not None and ref_value is not None and _numbers_equal(comma_value, ref_value, precision, True):
        return "numeric"  # either reading of "15,975" may be meant; for one number the decimal one is tried too
    ref_comma, pred_value = _decimal_comma_value(reference), _as_number(pred)
    if ref_comma is not None and pred_value is not None and _numbers_equal(pred_value, ref_comma, precision, True):
        return "numeric"  # a reference written with a decimal comma ("1,22")
    if (method := _values_match(pred, ref, pred_percent, ref_percent, precision)) is not None:
        return method
    ref_letter, pred_letter = _choice_letter(reference), _choice_letter(prediction)
    if ref_letter is not None and len(_unwrap_text(reference).strip("() *")) == 1:
        return "choice" if pred_letter == ref_letter else "mismatch"
    if ref_option := _option_with_value(reference):  # "(C) 12": the letter, the option's text, or both
        if pred_option := _option_with_value(prediction):
            return "choice" if pred_option[0] == ref_option[0] else "mismatch"
        if pred_letter is not None and len(_unwrap_text(prediction).strip("()$ *")) == 1:
            return "choice" if pred_letter == ref_option[0] else "mismatch"
        return _match_method(prediction, ref_option[1], problem, deadline, symbolic_verdict)
    if pred_option := _option_with_value(prediction):  # "(C) 12" for 12: the option's text is the answer
        return _match_method(pred_option[1], reference, problem, deadline)
    if {pred, ref} & {"\\emptyset"} and _EMPTY_WORDS.fullmatch(pred if ref == "\\emptyset" else ref):
        return "exact"  # "no solution" for the empty set
    if (yes_no := _YES_NO.match(pred)) and ref.casefold() in ("yes", "no"):  # "No, it is not possible" for No
        return "words" if yes_no.group(1).casefold() == ref.casefold() else "mismatch"
    if _WORDS.match(pred) and _WORDS.match(ref) and max(len(pred), len(ref)) > 2:  # "ab" may be algebra
        return "words" if pred.casefold() == ref.casefold() else "mismatch"
    if "=" not in ref and "\\in" not in ref:  # "x = 3" for the value 3: compare the value
        bare = _without_assignment(pred)
        if bare != pred and (method := _values_match(bare, ref, pred_percent, ref_percent, precision)) is not None:
            return method
        pred = bare
    if "=" in ref and "=" not in pred:
        bare_ref = _without_assignment(ref)
        if (method := _values_match(pred, bare_ref, pred_percent, ref_percent, precision)) is not None:
            return method
    pred_vector, ref_vector = _vector_as_tuple(pred), _vector_as_tuple(ref)
    if ref_vector and not pred_vector:  # 3i - 2j for (3, -2)
        pred_vector = _unit_vectors_as_tuple(prediction, len(_split_top_level(ref_vector[1:-1])))
    both_matrices = _MATRIX.match(pred) and _MATRIX.match(ref)
    if (pred_vector or ref_vector) and (not both_matrices or (pred_vector and ref_vector)):  # (1, 2), a row for a column
        pred_tuple, ref_tuple = pred_vector or _bracketed_as_tuple(pred), ref_vector or _bracketed_as_tuple(ref)
        if (_as_collection(pred_tuple) or ("", ""))[0] == "tuple" == (_as_collection(ref_tuple) or ("", ""))[0]:
            pred, ref = pred_tuple, ref_tuple
    if in_order := _in_asked_order(pred, ref, problem):
        pred = in_order
    pred, ref = _both_signs(pred, ref), _both_signs(ref, pred)
    ref = _named_as_tuple(ref, pred)
    if (method := _collections_match(pred, ref, precision)) is not None:
        return method
    pred_interval, ref_interval = _relation_as_interval(pred), _relation_as_interval(ref)
    if (pred_interval or ref_interval) and not (pred_interval and ref_interval):
        if (method := _intervals_match(pred_interval or pred, ref_interval or ref, precision)) is not None:
            return method
    if (_as_number(ref) is not None and _free_letters(pred) and not _RELATION_SIGN.search(pred)
            and not _FUNCTION.search(pred)):  # sin^2 x + cos^2 x is 1: functions are left to math-verify
        return "mismatch"  # "AZYUK2A" for 2: a number is never equal to an expression in unknowns
    raw = prediction.replace("$", "").strip()
    if re.fullmatch(r"-?\d+(?:,-?\d+)+", raw) and (ref_collection := _as_collection(ref)) and ref_collection[0] == "list":
        if (method := _collections_match(raw.replace(",", ", "), ref, precision)) is not None:
            return method  # "113,108" for the two solutions 108 and 113: the list reading of the commas
    if len(pred) > _MAX_ANSWER_CHARS or len(ref) > _MAX_ANSWER_CHARS:
        return "mismatch"
    if symbolic_verdict is not None:  # math-verify already compared this extraction with the reference
        return "math_verify" if symbolic_verdict else "mismatch"
    if pred_percent != ref_percent:  # math-verify reads 12.5\% as 0.125: keep the sign on both or neither
        pred, ref = (pred + "\\%" if pred_percent else pred), (ref + "\\%" if ref_percent else ref)
    return _symbolic(ref, pred, precision, deadline)


def _deadline(time_limit_s: float) -> float:
    """When the symbolic step must give up: a little before the limit, so that killing an overrunning
    worker and returning still fit inside it."""
    return time.monotonic() + time_limit_s - min(0.05, 0.1 * time_limit_s)


def answers_match(prediction: str, reference: str, *, problem: str | None = None,
                  time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> bool:
    """Whether an extracted answer equals the reference answer (see the module docstring).

    `problem`, when given, lets a stated precision ("to the nearest tenth") decide numeric matches.
    """
    deadline = _deadline(time_limit_s)
    return _match_method(prediction, reference, problem, deadline) not in ("mismatch", "no_answer", "timeout")


def _reference_shape(reference: str) -> tuple[int, str]:
    """How many elements a reference lists, and as what ("list", "set", "tuple", "interval")."""
    collection = _as_collection(normalize_answer(reference)[0])
    return (len(collection[1]), collection[0]) if collection else (1, "value")


_CHAT_TOKEN_AND_AFTER = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end|user|assistant)\|>.*$", re.DOTALL)


def _reference_answer(reference: str) -> str:
    """The answer a reference states when it is a whole solution: its boxes (all of them, as one list:
    a reference has no discarded attempts), else its Minerva or "answer is" sentence."""
    boxes = _boxes(reference)
    contents = [content for content, _, _ in boxes]
    restated = all(_values_match(normalize_answer(a)[0], normalize_answer(contents[-1])[0], False, False, None)
                   not in (None, "mismatch") for a in contents)  # 15\frac{39}{40} then \frac{639}{40}
    if len(set(contents)) > 1 and not restated:
        return ", ".join(contents)
    if boxes or re.search(r"final answer is", reference, re.IGNORECASE):
        found = _extract(reference)
        if found is not None:
            return found.answer
    return reference


def grade(completion: str, reference: str, *, problem: str | None = None,
          time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> GradeResult:
    """Extract the final answer from a whole completion and judge it against the reference.

    `problem`, when given, lets a stated precision decide numeric matches. The whole grade, symbolic
    step included, returns within `time_limit_s` (then `method="timeout"`, `correct=False`).
    """
    deadline = _deadline(time_limit_s)
    symbolic_verdict: bool | None = None
    reference = _reference_answer(reference)
    completion = _CHAT_TOKEN_AND_AFTER.sub("", completion) or completion  # the next turn is not this answer
    completion = re.sub(r"^.*</think>", "", completion, flags=re.DOTALL).strip() or completion  # the reply after it
    if "<think>" in completion:  # a reasoning block never closed: the completion stopped while thinking
        return GradeResult(extracted=None, correct=False, method="no_answer")
    found = _extract(completion)
    region = _unanchored_region(completion) if found is None and not _cut_off_in_box(completion) else None
    if region is not None:
        is_choice = _choice_letter(reference) is not None and len(_unwrap_text(reference).strip("()$ *")) == 1
        gold, percent = normalize_answer(reference)
        precision = stated_precision(problem, reference)
        priced = region.replace("\\$", "")  # "\\$1,234.50": a price, not a math delimiter
        reply = _math_verify_extraction(priced, deadline, choices=is_choice, gold=gold + ("\\%" if percent else ""),
                                        places=precision.decimals if precision else None)
        if reply == "timeout":
            return GradeResult(extracted=None, correct=False, method="timeout")
        extracted, symbolic_verdict = reply
        if extracted:
            start = completion.rfind(extracted)  # -1 when math-verify rewrote the span (\mathbf -> \text)
            found = _Extraction(extracted, start, start + len(extracted) if start >= 0 else -1, False)
        else:
            found = _prose_answer(completion, region, reference)
    if found is None:
        return GradeResult(extracted=None, correct=False, method="no_answer")
    candidates = [found]
    size, kind = _reference_shape(reference)
    boxes = _boxes(completion)
    joined = _joined_boxes(completion, boxes) if boxes and found.start == boxes[-1][1] else []
    if len(joined) > 1:  # one list of boxes is one answer
        combined = ", ".join(content for content, _, _ in joined)
        tuple_of_values = kind == "tuple" and all(_as_collection(content) is None for content, _, _ in joined)
        candidates = [_Extraction(f"({combined})" if tuple_of_values else combined, joined[0][1], joined[-1][2], True)]
    elif size > 1 and len(boxes) >= size and found.start == boxes[-1][1]:  # "\boxed{2}. ... \boxed{3}"
        last = boxes[-size:]
        if all(_as_collection(content) is None for content, _, _ in last):
            combined = ", ".join(content for content, _, _ in last)
            combined = f"({combined})" if kind == "tuple" else combined  # "x = \\boxed{2}, y = \\boxed{3}" for (2, 3)
            candidates.append(_Extraction(combined, last[0][1], last[-1][2], True))
    method: GradeMethod = "mismatch"
    for candidate in candidates:
        hint = symbolic_verdict if candidate is found and not found.anchored else None
        method = _match_method(candidate.answer, reference, problem, deadline, hint)
        if method not in ("mismatch", "no_answer"):
            found = candidate
            break
    correct = method not in ("mismatch", "no_answer", "timeout")
    confidence: Confidence | None = None
    if correct:
        confidence = _CONFIDENCE[method] if found.anchored else "heuristic"
    return GradeResult(extracted=found.answer, correct=correct, method=method, confidence=confidence,
                       span=(found.start, found.end) if found.start >= 0 else None)
