"""Build tests/grading_corpus/cases.jsonl: (completion, gold, expected) cases for differential grading.

    python -m tests.grading_corpus.build        # deterministic: the same file on every run

Every case starts from a real reference answer of the six evaluation benchmarks (MATH-500, GSM8K,
AIME 2024/2025, AMC 2023, OlympiadBench; loaded with eval.benchmarks from the offline copies) and
renders it the way models write answers. The expected verdict follows from the construction alone,
never from running a grader:

- a *right* case writes the reference itself, or a form that is equal by a rule of arithmetic or
  notation stated in its `why` (`\\dfrac` for `\\frac`, `1{,}000` for 1000, `3\\times10^{5}` for
  300000, a unit after the value, the same set in another order, a rounding at the precision the
  problem states);
- a *wrong* case changes the value: one integer literal moved by a non-zero amount, the sign flipped
  on a non-zero value, one element of a list replaced, a tuple reordered, a bracket of an interval
  flipped, another reference of the same benchmark whose value differs, an anagram of a word answer,
  an answer cut off inside its box.

Each row: id, class, benchmark, problem_id, completion, gold, problem (only where the case needs the
problem's stated precision), expected, why.
"""

from __future__ import annotations

import json
import random
import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

from eval.benchmarks import load_benchmark

OUT = Path(__file__).resolve().parent / "cases.jsonl"
SEED = 23
BENCHMARKS = ("math500", "gsm8k", "aime24", "aime25", "amc23", "olympiadbench")

PREAMBLES = [
    "Let's work through this step by step.\n\nFirst we set up the equation: 3x + 2 = 11, so 3x = 9.\n",
    "We start by listing what we know. There are 4 groups of 6, giving 24 items, and 2 are removed.\n",
    "Step 1: simplify the expression.\nStep 2: substitute n = 7 and evaluate; 7 * 8 = 56.\n",
    "Consider the cases separately. In the first case we get 12 possibilities; in the second, 5.\n",
    "I'll compute this carefully.\n\n$$a_1 = 2,\\quad a_2 = 5,\\quad a_3 = 10$$\n",
]


# ---------------------------------------------------------------- small exact helpers (no grader involved)

INT = re.compile(r"^-?\d+$")
DEC = re.compile(r"^-?\d*\.\d+$")
FRAC = re.compile(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$")


def plain_value(answer: str) -> Fraction | None:
    """The exact value of an integer, a decimal or `\\frac{a}{b}` reference; None for anything else."""
    if INT.match(answer) or DEC.match(answer):
        return Fraction(answer)
    if m := FRAC.match(answer):
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) else value
    return None


def approx_value(answer: str) -> float | None:
    """Float value of the few reference shapes whose decimal expansion the precision cases need."""
    import math

    if (v := plain_value(answer)) is not None:
        return float(v)
    shapes = [
        (r"^\\frac\{\\sqrt\{(\d+)\}\}\{(\d+)\}$", lambda a, b: math.sqrt(int(a)) / int(b)),
        (r"^(\d+)\\sqrt\{(\d+)\}$", lambda a, b: int(a) * math.sqrt(int(b))),
        (r"^\\sqrt\{(\d+)\}$", lambda a: math.sqrt(int(a))),
        (r"^(\d+) ?\\pi$", lambda a: int(a) * math.pi),
        (r"^\\frac\{(\d+)\}\{(\d+)\}\\pi$", lambda a, b: int(a) / int(b) * math.pi),
        (r"^\\frac\{(\d+) ?\\pi\}\{(\d+)\}$", lambda a, b: int(a) / int(b) * math.pi),
        (r"^\\frac\{\\pi\}\{(\d+)\}$", lambda b: math.pi / int(b)),
    ]
    for pattern, value in shapes:
        if m := re.match(pattern, answer):
            return value(*m.groups())
    return None


def rounded(value: float, places: int) -> str:
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def exact_rounded(value: Fraction, places: int) -> str:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return str(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def bump_last_integer(answer: str, rng: random.Random) -> str | None:
    """The reference with its last integer literal moved by 1-3: a different value for a simplified
    reference (every reference here is in lowest terms, so no other literal compensates)."""
    literals = list(re.finditer(r"\d+", answer))
    if not literals:
        return None
    last = literals[-1]
    moved = int(last.group(0)) + rng.choice([1, 2, 3])
    return answer[: last.start()] + str(moved) + answer[last.end():]


def perturbed(answer: str, rng: random.Random) -> str | None:
    """A wrong value: for a plain number a different number, else one integer literal moved."""
    value = plain_value(answer)
    if value is not None and INT.match(answer):
        return str(int(answer) + rng.choice([1, -1, 2, 10]))
    if value is not None and DEC.match(answer):
        return bump_last_integer(answer, rng)
    if m := re.match(r"^(-?)(\d+)(?=\s*\\(?:mbox|text))", answer):  # "15\mbox{ cm}^2": the value, not the unit's power
        return f"{m.group(1)}{int(m.group(2)) + rng.choice([1, 2, 3])}{answer[m.end():]}"
    return bump_last_integer(answer, rng)


def negated(answer: str) -> str | None:
    value = plain_value(answer)
    if value is not None:
        if value == 0:
            return None
        return answer[1:] if answer.startswith("-") else f"-{answer}"
    if re.search(r"[a-zA-Z]", answer.replace("\\frac", "").replace("\\sqrt", "").replace("\\pi", "")):
        return None  # may have no sign (an expression in n, a set): not a clean "wrong sign"
    return answer[1:] if answer.startswith("-") else f"-{answer}"


def with_separator(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


# ---------------------------------------------------------------- the corpus


class Corpus:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.rng = random.Random(SEED)

    def add(self, cls: str, item, completion: str, gold: str, expected: bool, why: str, problem: str | None = None):
        row = {"id": f"{cls}/{len(self.rows)}", "class": cls, "benchmark": item.benchmark, "problem_id": item.id,
               "completion": completion, "gold": gold, "expected": expected, "why": why}
        if problem is not None:
            row["problem"] = problem
        self.rows.append(row)

    def preamble(self) -> str:
        return self.rng.choice(PREAMBLES)

    def boxed(self, answer: str) -> str:
        closing = self.rng.choice([
            "Therefore, the final answer is $\\boxed{{{a}}}$.",
            "So the answer is \\boxed{{{a}}}.",
            "\\[\n\\boxed{{{a}}}\n\\]",
            "Hence $\\boxed{{{a}}}$ is our result.",
            "The final answer is $\\boxed{{{a}}}$",
        ])
        return self.preamble() + "\n" + closing.format(a=answer)


def build() -> list[dict]:
    corpus = Corpus()
    rng = corpus.rng
    items = {name: load_benchmark(name) for name in BENCHMARKS}
    every = [item for name in BENCHMARKS for item in items[name]]

    def sample(pool, k):
        pool = list(pool)
        return rng.sample(pool, min(k, len(pool)))

    def other_reference(item):
        """Another reference of the same benchmark with a different plain value (or text)."""
        pool = [o for o in items[item.benchmark] if o.answer != item.answer]
        for _ in range(50):
            other = rng.choice(pool)
            a, b = plain_value(item.answer), plain_value(other.answer)
            if a is not None and b is not None and a != b:
                return other.answer
            if (a is None) != (b is None):  # a number vs a non-number (tuple, interval, expression)
                return other.answer
        return None

    def unordered(item) -> bool:
        """A list answer whose order does not matter: the problem asks for all values / solutions."""
        return bool(re.search(r"separated by commas|\ball (?:possible |real |the )?(?:values|solutions|roots|"
                              r"numbers|integers|pairs)|find all|compute all|determine all", item.problem, re.IGNORECASE))

    simple = [i for i in every if len(i.answer) < 60 and "\\text" not in i.answer and "," not in i.answer
              and "=" not in i.answer and "\\cup" not in i.answer]

    # boxed_final: the reference as written in a final box; wrong: perturbed or another reference
    for item in sample(simple, 130):
        corpus.add("boxed_final", item, corpus.boxed(item.answer), item.answer, True, "the reference itself, boxed")
        wrong = perturbed(item.answer, rng) if rng.random() < 0.5 else other_reference(item)
        if wrong:
            corpus.add("boxed_final", item, corpus.boxed(wrong), item.answer, False,
                       "a different value boxed (a literal moved, or another problem's answer)")

    # multi_boxed: several boxes; the last one is the answer, or the last k hold a k-element answer
    numeric = [i for i in every if plain_value(i.answer) is not None]
    for item in sample(numeric, 60):
        wrong = perturbed(item.answer, rng)
        corpus.add("multi_boxed", item,
                   f"{corpus.preamble()}A first attempt gives $\\boxed{{{wrong}}}$, but that misses a case.\n"
                   f"Correcting it, the answer is $\\boxed{{{item.answer}}}$.", item.answer, True,
                   "an earlier box was revised: the last box is the answer, and it is the reference")
        corpus.add("multi_boxed", item,
                   f"{corpus.preamble()}We get $\\boxed{{{item.answer}}}$ at first.\nOn second thought the "
                   f"count changes, so the answer is $\\boxed{{{wrong}}}$.", item.answer, False,
                   "the last box (the final answer) holds a different value")
    two = [i for i in every if re.fullmatch(r"-?\d+(?:\.\d+)?, ?-?\d+(?:\.\d+)?", i.answer)
           and not re.fullmatch(r"\d{1,3},\d{3}", i.answer) and unordered(i)]
    for item in two:
        a, b = [p.strip() for p in item.answer.split(",")]
        corpus.add("multi_boxed", item, f"{corpus.preamble()}The solutions are $\\boxed{{{a}}}$ and $\\boxed{{{b}}}$.",
                   item.answer, True, "a two-element answer written as two boxes, each one element")
        corpus.add("multi_boxed", item, f"{corpus.preamble()}The solutions are $\\boxed{{{b}}}$ and $\\boxed{{{a}}}$.",
                   item.answer, True, "the same two elements in the other order (the reference is an unordered list)")
        corpus.add("multi_boxed", item, f"{corpus.preamble()}The solutions are $\\boxed{{{a}}}$ and "
                   f"$\\boxed{{{perturbed(b, rng)}}}$.", item.answer, False, "one of the two boxed elements is wrong")

    # minerva: "Final Answer: The final answer is $X$. I hope it is correct."
    for item in sample(simple, 80):
        template = "{pre}\nFinal Answer: The final answer is ${a}$. I hope it is correct."
        corpus.add("minerva", item, template.format(pre=corpus.preamble(), a=item.answer), item.answer, True,
                   "Minerva format stating the reference")
        wrong = perturbed(item.answer, rng)
        if wrong:
            corpus.add("minerva", item, template.format(pre=corpus.preamble(), a=wrong), item.answer, False,
                       "Minerva format stating a moved literal")

    # free_text: answer sentences without a box
    sentences = ["The answer is ${a}$.", "**Answer:** ${a}$", "Therefore, the final answer is ${a}$.",
                 "So the answer is: ${a}$", "Answer: ${a}$\n\nLet me know if you need more detail."]
    for item in sample(simple, 90):
        if item.benchmark == "gsm8k" and rng.random() < 0.4:
            text, why = f"{corpus.preamble()}\n#### {item.answer}", "GSM8K '#### n' line with the reference"
        else:
            text, why = corpus.preamble() + "\n" + rng.choice(sentences).format(a=item.answer), "answer sentence"
        corpus.add("free_text", item, text, item.answer, True, why)
        wrong = perturbed(item.answer, rng)
        if wrong:
            corpus.add("free_text", item, corpus.preamble() + "\n" + rng.choice(sentences).format(a=wrong),
                       item.answer, False, "answer sentence with a moved literal")

    # relation: "x = 3", "so k equals 4" for a value reference; inequalities for interval references
    variables = ["x", "k", "n", "m", "a", "t"]
    for item in sample([i for i in simple if plain_value(i.answer) is not None], 60):
        v = rng.choice(variables)
        forms = [f"So ${v} = {item.answer}$.", f"Therefore, ${v} = {item.answer}$.", f"\\boxed{{{v} = {item.answer}}}",
                 f"So {v} equals {item.answer}.", f"The answer is ${v}={item.answer}$."]
        corpus.add("relation", item, corpus.preamble() + rng.choice(forms), item.answer, True,
                   f"the value assigned to the unknown {v} is the reference")
        wrong = perturbed(item.answer, rng)
        corpus.add("relation", item, corpus.preamble() + rng.choice(forms).replace(item.answer, wrong, 1),
                   item.answer, False, "the unknown is assigned a different value")
    intervals = [("(-\\infty, {a}]", "x \\le {a}", "x < {a}"), ("(-\\infty, {a})", "x < {a}", "x \\le {a}"),
                 ("[{a}, \\infty)", "x \\ge {a}", "x > {a}"), ("({a}, \\infty)", "x > {a}", "x \\ge {a}")]
    for item in sample(numeric, 60):
        if not INT.match(item.answer):
            continue
        gold_t, right_t, wrong_t = rng.choice(intervals)
        gold = gold_t.format(a=item.answer)
        corpus.add("relation", item, corpus.preamble() + f"The solution set is $\\boxed{{{right_t.format(a=item.answer)}}}$.",
                   gold, True, "the inequality describes exactly the reference interval")
        corpus.add("relation", item, corpus.preamble() + f"The solution set is $\\boxed{{{wrong_t.format(a=item.answer)}}}$.",
                   gold, False, "the inequality has the other strictness: the endpoint is in one and not the other")

    # matrix: vectors and matrices inside a sentence, as pmatrix or bmatrix
    matrices = [i for i in every if "pmatrix" in i.answer]
    for item in matrices:
        for _ in range(4):
            form = rng.choice([item.answer, item.answer.replace("pmatrix", "bmatrix")])
            sentence = rng.choice(["Thus the answer is ${m}$.", "Therefore, the vector we want is $\\boxed{{{m}}}$.",
                                   "So the result is $\\mathbf{{v}} = {m}$.", "The answer is \\[{m}.\\]"])
            corpus.add("matrix", item, corpus.preamble() + sentence.format(m=form), item.answer, True,
                       "the reference matrix (pmatrix or bmatrix: same entries) in a sentence")
            wrong = bump_last_integer(form, rng)
            corpus.add("matrix", item, corpus.preamble() + sentence.format(m=wrong), item.answer, False,
                       "one matrix entry moved")

    # thousands: separators models and LaTeX use for large integers
    big = [i for i in every if INT.match(i.answer) and abs(int(i.answer)) >= 1000]
    separators = [(",", "comma"), ("{,}", "LaTeX {,}"), (",\\!", "comma with \\!"), ("\\,", "thin space \\,"),
                  ("\u2009", "Unicode thin space"), ("\\ ", "control space"), (" ", "plain space")]
    for item in sample(big, 100):
        n = int(item.answer)
        sep, name = rng.choice(separators)
        corpus.add("thousands", item, corpus.boxed(with_separator(n, sep)), item.answer, True,
                   f"the reference written with {name} thousands separators")
        wrong_n = n + rng.choice([1, -1, 1000, 10])
        corpus.add("thousands", item, corpus.boxed(with_separator(wrong_n, sep)), item.answer, False,
                   f"a different integer with {name} separators")

    # decimal_comma: a decimal written with a comma, for a reference that is one number
    decimals = []
    for item in every:
        value = plain_value(item.answer)
        if value is not None and value.denominator != 1 and value.denominator in (2, 4, 5, 8, 10, 20, 25, 40, 50, 100):
            decimals.append((item, value))
    for item, value in decimals:
        text = str(Decimal(value.numerator) / Decimal(value.denominator))
        comma = text.replace(".", ",")
        corpus.add("decimal_comma", item, corpus.boxed(comma), item.answer, True,
                   f"{text} with a decimal comma (the reference is a single number)")
        wrong = bump_last_integer(text, rng).replace(".", ",")
        corpus.add("decimal_comma", item, corpus.boxed(wrong), item.answer, False, "a different decimal, comma-separated")

    # precision: the problem asks for a rounding; right = rounded correctly, wrong = off by one unit
    places_by_phrase = [("to the nearest tenth", 1), ("to the nearest hundredth", 2), ("to the nearest thousandth", 3),
                        ("rounded to 2 decimal places", 2), ("as a decimal rounded to 3 decimal places", 3)]
    # references whose value has more decimals than any asked place: irrational shapes, or fractions
    # such as 1/3 or 7/40 that a rounding changes
    inexact = []
    for item in every:
        exact, value = plain_value(item.answer), approx_value(item.answer)
        if value is None or (exact is not None and exact.denominator in (1, 2, 4, 5, 10, 20, 25, 50, 100)):
            continue
        inexact.append((item, exact, value))
    for item, exact, value in sample(inexact, 80):
        phrase, places = rng.choice(places_by_phrase)
        problem = f"{item.problem} Express your answer {phrase}."
        right = exact_rounded(exact, places) if exact is not None else rounded(value, places)
        corpus.add("precision", item, corpus.boxed(right), item.answer, True,
                   f"the exact reference {value:.8f} rounded {phrase}, as the problem asks", problem=problem)
        unit = Decimal(1).scaleb(-places)
        wrong = str(Decimal(right) + unit * rng.choice([1, -1]))
        corpus.add("precision", item, corpus.boxed(wrong), item.answer, False,
                   f"one unit in the last asked place away from {right}", problem=problem)
        is_exact_rounding = exact is not None and Fraction(Decimal(right)) == exact
        if places >= 2 and not is_exact_rounding:
            corpus.add("precision", item, corpus.boxed(right), item.answer, False,
                       "a rounding of an exact reference when the problem asks for no rounding", problem=item.problem)
    for item in sample([i for i in every if DEC.match(i.answer)], 30):
        places = len(item.answer.split(".")[1])
        longer = item.answer + "3"
        corpus.add("precision", item, corpus.boxed(longer), item.answer, True,
                   f"a longer decimal that rounds to the reference at its {places} places, which the problem asks for",
                   problem=f"{item.problem} Round your answer to {places} decimal places.")

    # scientific notation for integers
    for item in sample([i for i in every if INT.match(i.answer) and abs(int(i.answer)) >= 100], 70):
        n = int(item.answer)
        digits = str(abs(n)).rstrip("0")
        exponent = len(str(abs(n))) - 1
        mantissa = (digits[0] + ("." + digits[1:] if len(digits) > 1 else "")) if digits else "0"
        sign = "-" if n < 0 else ""
        forms = [f"{sign}{mantissa}\\times10^{{{exponent}}}", f"{sign}{mantissa} \\times 10^{exponent}",
                 f"{sign}{mantissa}e{exponent}", f"{sign}{mantissa}E+{exponent:02d}", f"{sign}{mantissa} \\cdot 10^{{{exponent}}}"]
        form = rng.choice(forms)
        corpus.add("scientific", item, corpus.boxed(form), item.answer, True, f"{n} in scientific notation")
        wrong = form.replace(str(exponent), str(exponent + 1), 1) if "E+" not in form else form.replace(
            f"E+{exponent:02d}", f"E+{exponent + 1:02d}")
        corpus.add("scientific", item, corpus.boxed(wrong), item.answer, False, "the exponent one too large")

    # units: a unit after the value (with exponents); the unit's exponent never applies to the number
    units = ["\\text{ cm}^2", "\\text{cm}^2", "\\mbox{ inches}^2", "\\,\\text{m/s}", " \\text{ hours}", "\\text{ m}^3",
             " dollars", "\\text{ cents}", " \\mathrm{kg}", " square units", "\\text{ feet}"]
    plain_numbers = [i for i in every if (INT.match(i.answer) or DEC.match(i.answer)) and not i.answer.startswith("-")]
    for item in sample(plain_numbers, 100):
        unit = rng.choice(units)
        corpus.add("units", item, corpus.boxed(f"{item.answer}{unit}"), item.answer, True, f"the reference followed by {unit!r}")
        corpus.add("units", item, corpus.boxed(f"{perturbed(item.answer, rng)}{unit}"), item.answer, False,
                   "a different value followed by a unit")
    for item in [i for i in every if INT.match(i.answer) and int(i.answer) > 3][:400]:
        n = int(item.answer)
        root = int(round(n ** 0.5))
        if root * root == n:
            corpus.add("units", item, corpus.boxed(f"{root}\\text{{ cm}}^2"), item.answer, False,
                       f"{root} cm^2 is the value {root} in square centimetres, not {n}")
    for item in [i for i in every if re.search(r"\\(?:mbox|text)\{ ?[a-z]+\}", i.answer) and re.match(r"^\d", i.answer)]:
        value = re.match(r"^[\d.]+", item.answer).group(0)
        corpus.add("units", item, corpus.boxed(value), item.answer, True, "the reference's value without its unit")
        corpus.add("units", item, corpus.boxed(perturbed(value, rng)), item.answer, False, "another value without a unit")

    # intervals
    interval_items = [i for i in every if re.fullmatch(r"[\(\[][^,]+,[^,]+[\)\]]", i.answer) and
                      ("\\infty" in i.answer or i.answer[0] != i.answer[-1].replace(")", "(").replace("]", "["))]
    for item in interval_items:
        form = rng.choice([f"\\left{item.answer[0]} {item.answer[1:-1].replace(',', ', ')} \\right{item.answer[-1]}",
                           item.answer.replace(" ", ""), item.answer])
        corpus.add("interval", item, corpus.boxed(form), item.answer, True, "the reference interval, re-spaced or with \\left/\\right")
        if not item.answer[1:].lstrip("-").startswith("\\infty"):
            flipped = ("[" if item.answer[0] == "(" else "(") + item.answer[1:]
            corpus.add("interval", item, corpus.boxed(flipped), item.answer, False, "the left endpoint's bracket flipped")
        moved = bump_last_integer(item.answer, rng)
        if moved:
            corpus.add("interval", item, corpus.boxed(moved), item.answer, False, "an endpoint moved")
    for item in sample(numeric, 60):  # constructed intervals around real references
        if not INT.match(item.answer):
            continue
        a, b = int(item.answer), int(item.answer) + rng.choice([1, 3, 7])
        gold = f"[{a}, {b})"
        corpus.add("interval", item, corpus.boxed(f"\\left[{a},{b}\\right)"), gold, True, "the same half-open interval")
        corpus.add("interval", item, corpus.boxed(f"({a}, {b}]"), gold, False, "both endpoints' brackets flipped")
        corpus.add("interval", item, corpus.boxed(f"[{a}, {b + 1})"), gold, False, "the right endpoint moved")

    # sets and lists of solutions: any order, with or without braces; wrong: an element replaced or missing
    lists = [i for i in every if re.fullmatch(r"-?[\w\\{}]+(?:, ?-?[\w\\{}]+)+", i.answer) and "(" not in i.answer
             and "=" not in i.answer and all(plain_value(p.strip()) is not None for p in i.answer.split(","))
             and not re.fullmatch(r"\d{1,3},\d{3}", i.answer) and unordered(i)
             and len({plain_value(p.strip()) for p in i.answer.split(",")}) == len(i.answer.split(","))]
    for item in lists:
        parts = [p.strip() for p in item.answer.split(",")]
        shuffled = parts[::-1]
        corpus.add("set", item, corpus.boxed(", ".join(shuffled)), item.answer, True, "the same solutions in reverse order")
        corpus.add("set", item, corpus.boxed("\\{" + ", ".join(parts) + "\\}"), item.answer, True, "the solutions as a set")
        replaced = parts[:-1] + [perturbed(parts[-1], rng)]
        corpus.add("set", item, corpus.boxed(", ".join(replaced)), item.answer, False, "one solution replaced")
        corpus.add("set", item, corpus.boxed(", ".join(parts[:-1])), item.answer, False, "one solution missing")
    for item in sample([i for i in every if INT.match(i.answer)], 40):  # constructed solution sets
        a = int(item.answer)
        b = a + rng.choice([2, 5, -3])
        gold = f"{a}, {b}"
        corpus.add("set", item, corpus.boxed(f"{b},{a}"), gold, True, "both solutions, other order")
        corpus.add("set", item, corpus.boxed(f"\\{{{b}, {a}\\}}"), gold, True, "both solutions as a set")
        corpus.add("set", item, corpus.boxed(f"{a}, {b + 1}"), gold, False, "one solution replaced")
        corpus.add("set", item, corpus.boxed(f"{a}"), gold, False, "one solution missing")

    # tuples: order matters
    tuples = [i for i in every if re.fullmatch(r"\((?:-?\d+, ?)+-?\d+\)", i.answer)]
    for item in tuples:
        parts = item.answer[1:-1].split(",")
        corpus.add("tuple", item, corpus.boxed("\\left(" + ", ".join(p.strip() for p in parts) + "\\right)"),
                   item.answer, True, "the reference tuple with \\left( \\right) and spaces")
        if len(set(parts)) > 1:
            corpus.add("tuple", item, corpus.boxed("(" + ",".join(parts[::-1]) + ")"), item.answer, False,
                       "the tuple's elements reversed (order matters in a point)")
        flip = next((k for k, p in enumerate(parts) if p.strip() not in ("0", "-0")), None)
        if flip is not None:
            changed = list(parts)
            changed[flip] = changed[flip].strip()[1:] if changed[flip].strip().startswith("-") else "-" + changed[flip].strip()
            corpus.add("tuple", item, corpus.boxed("(" + ",".join(changed) + ")"), item.answer, False, "one coordinate's sign flipped")
    for item in sample([i for i in every if INT.match(i.answer)], 40):
        a = int(item.answer)
        b = a + rng.choice([3, -4, 9])
        gold = f"({a},{b})"
        corpus.add("tuple", item, corpus.boxed(f"({a}, {b})"), gold, True, "the same point, spaced")
        corpus.add("tuple", item, corpus.boxed(f"({b}, {a})"), gold, False, "the coordinates swapped")

    # fractions: \dfrac, \tfrac, a/b, unreduced, decimal; wrong: reciprocal, numerator moved
    fractions = [i for i in every if FRAC.match(i.answer)]
    for item in sample(fractions, 80):
        sign, a, b = FRAC.match(item.answer).groups()
        forms = [(f"{sign}\\dfrac{{{a}}}{{{b}}}", "\\dfrac"), (f"{sign}\\tfrac{{{a}}}{{{b}}}", "\\tfrac"),
                 (f"{sign}{a}/{b}", "a/b"), (f"{sign}\\frac{{{2 * int(a)}}}{{{2 * int(b)}}}", "unreduced"),
                 (f"\\frac{{{sign}{a}}}{{{b}}}", "sign in the numerator")]
        form, name = rng.choice(forms)
        corpus.add("fraction", item, corpus.boxed(form), item.answer, True, f"the same fraction ({name})")
        if a != b:
            corpus.add("fraction", item, corpus.boxed(f"{sign}\\frac{{{b}}}{{{a}}}"), item.answer, False, "the reciprocal")
        corpus.add("fraction", item, corpus.boxed(f"{sign}\\dfrac{{{int(a) + 1}}}{{{b}}}"), item.answer, False, "numerator moved")

    # pi: spacing and \dfrac forms, a 10-digit decimal; wrong: coefficient moved, 3.14-style truncation
    pis = [i for i in every if "\\pi" in i.answer and len(i.answer) < 40]
    for item in pis:
        form = item.answer.replace("\\frac", "\\dfrac").replace(" \\pi", "\\pi").replace("\\pi", " \\pi")
        corpus.add("pi", item, corpus.boxed(form.strip()), item.answer, True, "the reference re-spaced, \\dfrac")
        moved = bump_last_integer(item.answer, rng)
        if moved:
            corpus.add("pi", item, corpus.boxed(moved), item.answer, False, "a literal of the pi expression moved")
        value = approx_value(item.answer)
        if value is not None:
            corpus.add("pi", item, corpus.boxed(f"{value:.10f}"), item.answer, True,
                       "the value to 10 decimals (within 1e-6 relative)")
            corpus.add("pi", item, corpus.boxed(f"{value:.2f}"), item.answer, False,
                       "a 2-decimal rounding when no precision is asked")

    # degrees
    degrees = [i for i in every if re.fullmatch(r"\d+\^\{?\\circ\}?", i.answer)]
    for item in degrees:
        n = re.match(r"\d+", item.answer).group(0)
        for form, name in ((n, "without the degree mark"), (f"{n}°", "with °"), (f"{n} degrees", "in words")):
            corpus.add("degrees", item, corpus.boxed(form), item.answer, True, f"the same angle {name}")
        corpus.add("degrees", item, corpus.boxed(f"{int(n) + 10}^\\circ"), item.answer, False, "another angle")
    for item in sample([i for i in every if INT.match(i.answer) and 0 < int(i.answer) < 360], 40):
        corpus.add("degrees", item, corpus.boxed(f"{item.answer}^{{\\circ}}"), item.answer, True, "the value with ^{\\circ}")
        corpus.add("degrees", item, corpus.boxed(f"{int(item.answer) + 1}^\\circ"), item.answer, False, "another angle")

    # percent: the value with a percent sign for a percentage question
    percent_items = [i for i in every if plain_value(i.answer) is not None and re.search(r"percent|%", i.problem)]
    for item in sample(percent_items, 50):
        form = rng.choice([f"{item.answer}\\%", f"{item.answer}%", f"{item.answer} percent"])
        corpus.add("percent", item, corpus.boxed(form), item.answer, True, "the reference with a percent sign")
        corpus.add("percent", item, corpus.boxed(f"{perturbed(item.answer, rng)}\\%"), item.answer, False,
                   "another percentage")

    # negatives: the minus written differently; wrong: sign flipped
    negatives = [i for i in every if i.answer.startswith("-") and len(i.answer) < 40
                 and "," not in i.answer]  # one value: parentheses around a list would make it a tuple
    for item in negatives:
        form = rng.choice([item.answer.replace("-", "- ", 1), item.answer.replace("-", "\u2212", 1),
                           f"\\left({item.answer}\\right)"])
        corpus.add("negative", item, corpus.boxed(form), item.answer, True, "the same negative value")
        corpus.add("negative", item, corpus.boxed(item.answer[1:]), item.answer, False, "the sign dropped")
    for item in sample([i for i in every if plain_value(i.answer) not in (None, 0) and not i.answer.startswith("-")], 60):
        corpus.add("negative", item, corpus.boxed(negated(item.answer)), item.answer, False, "the sign flipped")

    # text answers: case and \text wrappers; wrong: an anagram, or another text answer
    texts = [i for i in every if re.fullmatch(r"\\text\{[A-Za-z]+\}", i.answer)]
    words = sorted({t.answer[6:-1] for t in texts})
    for item in texts:
        word = item.answer[6:-1]
        for form, name in ((word, "bare"), (word.lower(), "lower case"), (f"\\textbf{{{word}}}", "bold"),
                           (f"\\text{{ {word} }}", "spaced in \\text")):
            corpus.add("text", item, corpus.boxed(form), item.answer, True, f"the same word, {name}")
        anagram = word[0] + word[1:][::-1] if word[1:] != word[1:][::-1] else None
        if anagram and anagram.lower() != word.lower():
            corpus.add("text", item, corpus.boxed(anagram), item.answer, False, "an anagram of the word")
        other = next(w for w in words[::-1] if w.lower() != word.lower())
        corpus.add("text", item, corpus.boxed(f"\\text{{{other}}}"), item.answer, False, "another text answer")
        corpus.add("text", item, f"{corpus.preamble()}The answer is {word}.", item.answer, True, "the word in an answer sentence")

    # multiple-choice letters: real letter references, plus a letter assigned to AMC/AIME problems
    letters = "ABCDE"
    choice_items = [(i, re.search(r"[A-E]", i.answer).group(0)) for i in every if re.fullmatch(r"\\text\{\([A-E]\)\}", i.answer)]
    choice_items += [(i, letters[k % 5]) for k, i in enumerate(items["amc23"] + items["aime24"] + items["aime25"])]
    for item, letter in choice_items:
        gold = item.answer if "\\text" in item.answer else f"({letter})"
        right = rng.choice([f"\\boxed{{{letter}}}", f"\\boxed{{\\text{{({letter})}}}}", f"\\boxed{{\\textbf{{({letter})}}}}",
                            f"The answer is ({letter}).", f"\\boxed{{({letter})}}"])
        corpus.add("choice", item, corpus.preamble() + right, gold, True, f"the letter {letter}")
        other = letters[(letters.index(letter) + 1 + rng.randrange(4)) % 5]
        corpus.add("choice", item, corpus.preamble() + right.replace(f"{letter}", other), gold, False, f"the letter {other}")

    # no_answer: a box cut off mid-answer, or the instruction echoed back, after the reference appears
    for item in sample(simple, 60):
        corpus.add("no_answer", item, f"{corpus.preamble()}We find {item.answer} is a candidate, so the answer is "
                   f"$\\boxed{{{item.answer}", item.answer, False, "cut off inside its box: no answer was given")
        corpus.add("no_answer", item, f"{corpus.preamble()}Perhaps {item.answer}? I will put the final answer within "
                   "\\boxed{}.", item.answer, False, "only the instruction's empty box: no answer was given")

    # unanchored: a short reply with no box and no "answer is"; or a long one cut off mid-sentence
    for item in sample(simple, 80):
        reply = rng.choice(["We find that ${a}$.", "Here it is: ${a}$", "${a}$", "The value we want is ${a}$.",
                            "Thus ${a}$ is the result.", "\\[{a}\\]"])
        corpus.add("unanchored", item, reply.format(a=item.answer), item.answer, True,
                   "a one-line reply whose only value is the reference")
        wrong = perturbed(item.answer, rng)
        if wrong:
            corpus.add("unanchored", item, reply.format(a=wrong), item.answer, False, "a one-line reply with a moved literal")
        corpus.add("unanchored", item, f"{corpus.preamble()}\nWe try ${item.answer}$ first and then compute the "
                   f"remaining terms one by one, which gives 3 + 4 + {item.answer} +", item.answer, False,
                   "cut off mid-sentence (ran out of tokens) after merely mentioning the reference: no answer stated")

    # prose_answer: the answer anchor opens a sentence that states the value inside it
    nouns = ["total number of apples", "largest possible value of $n$", "area of the triangle", "sum of the roots",
             "number of ways", "final count"]
    for item in sample([i for i in simple if plain_value(i.answer) is not None], 60):
        noun = rng.choice(nouns)
        forms = ["Final Answer: The {n} is {a}. I hope it is correct.", "**Final Answer**\nThe {n} is ${a}$.",
                 "Answer: the {n} equals {a}.",
                 "Final Answer: The {n} is {a}. <|im_start|>user\nNow solve another one. The answer is 7."]
        form = rng.choice(forms)
        corpus.add("prose_answer", item, corpus.preamble() + form.format(n=noun, a=item.answer), item.answer, True,
                   "an answer sentence whose value is the reference (text after a chat-template token is a new turn)")
        wrong = perturbed(item.answer, rng)
        corpus.add("prose_answer", item, corpus.preamble() + form.format(n=noun, a=wrong), item.answer, False,
                   "an answer sentence stating a moved literal")

    # gold_solution: the reference is a whole MATH-500 solution (its box holds the answer)
    import json as json_module

    solutions = {f"math500/{row['unique_id']}": row["solution"] for row in map(
        json_module.loads, (Path(__file__).resolve().parents[2] / "eval" / "data" / "math500" / "test.jsonl")
        .read_text().splitlines())}
    for item in sample(items["math500"], 60):
        solution = solutions[item.id]
        corpus.add("gold_solution", item, corpus.boxed(item.answer), solution, True,
                   "the answer the reference solution boxes")
        wrong = perturbed(item.answer, rng)
        if wrong:
            corpus.add("gold_solution", item, corpus.boxed(wrong), solution, False, "a moved literal of that answer")

    # added after the classes above (so their rows stay as they were): readings that must not accept
    # a wrong value. "n,000" is n thousand, never the decimal n.000; a value in another unit is wrong.
    for item in [i for i in every if INT.match(i.answer) and 1 <= int(i.answer) <= 999][:60]:
        corpus.add("decimal_comma", item, corpus.boxed(f"{item.answer},000"), item.answer, False,
                   f"{item.answer},000 is {item.answer} thousand: a comma before three digits ending in 0 groups thousands")
    unit_pairs = [("\\text{ m}", "\\text{ s}", "\\text{ meters}"), ("\\text{ cm}", "\\text{ m}", "\\text{ centimeters}"),
                  (" hours", "\\text{ minutes}", "\\text{ hr}"), ("\\text{ kg}", "\\text{ g}", " kilograms"),
                  (" dollars", "\\text{ cents}", "\\text{ USD}"), ("\\text{ feet}", "\\text{ inches}", "\\text{ ft}")]
    # nonzero values only: 0 cents is 0 dollars, and the grader converts between units of one dimension
    nonzero_integers = [i for i in plain_numbers if INT.match(i.answer) and int(i.answer) != 0]
    for n, item in enumerate(nonzero_integers[:60]):
        unit, other, spelled = unit_pairs[n % len(unit_pairs)]
        reference = f"{item.answer}{unit}"
        corpus.add("units", item, corpus.boxed(f"{item.answer}{other}"), reference, False,
                   f"the reference's value in {other.strip()!r}, not {unit.strip()!r}")
        corpus.add("units", item, corpus.boxed(f"{item.answer}{spelled}"), reference, True,
                   f"the reference's value and unit, {unit.strip()!r} written as {spelled.strip()!r}")

    add_real_completions(corpus)

    # added after the real completions (so every earlier id stays): a value converted to another unit of
    # its dimension is right at the converted value, wrong at a factor of ten off
    conversions = [(" hours", "\\text{ minutes}", 60), ("\\text{ m}", "\\text{ cm}", 100),
                   ("\\text{ kg}", "\\text{ g}", 1000), (" dollars", "\\text{ cents}", 100),
                   ("\\text{ feet}", "\\text{ inches}", 12)]
    for n, item in enumerate(nonzero_integers[:40]):
        unit, other, factor = conversions[n % len(conversions)]
        for scale, right, why in ((1, True, ""), (10, False, ", ten times too large")):
            corpus.add("units", item, corpus.boxed(f"{int(item.answer) * factor * scale}{other}"), f"{item.answer}{unit}",
                       right, f"the reference's value converted to {other.strip()!r}{why}")
    return corpus.rows


# Real completions committed under docs/results/ (SmolLM2-135M, base and demo-tuned, on the first 50
# GSM8K and MATH-500 problems). Each was read by a person: these two state the reference as their
# final answer (repeated until the token limit); the other 198 state another value or, cut off,
# none at all.
REAL_RIGHT = {("embedded_tuned_demo", "gsm8k", 28), ("embedded_tuned_demo", "gsm8k", 31)}


def add_real_completions(corpus: Corpus) -> None:
    import pandas as pd

    results = Path(__file__).resolve().parents[2] / "docs" / "results"
    for run in ("embedded_base", "embedded_tuned_demo"):
        for path in sorted((results / run / "per_problem").glob("*/*.parquet")):
            frame = pd.read_parquet(path, columns=["benchmark", "problem_id", "completion", "reference_answer"])
            for index, row in enumerate(frame.itertuples()):
                right = (run, path.stem, index) in REAL_RIGHT
                item = type("Item", (), {"benchmark": row.benchmark, "id": row.problem_id})
                corpus.add("real", item, row.completion, row.reference_answer, right,
                           f"hand-read {run}/{path.stem} row {index}: " + (
                               "its final answer is the reference" if right else
                               "its final answer is another value, or it stops before stating one"))


def main() -> None:
    rows = build()
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    classes: dict[str, list[int]] = {}
    for row in rows:
        classes.setdefault(row["class"], [0, 0])[row["expected"]] += 1
    print(f"{len(rows)} cases -> {OUT}")
    for name, (wrong, right) in classes.items():
        print(f"  {name:14s} {right:4d} right {wrong:4d} wrong")


if __name__ == "__main__":
    main()
