"""The PromQL name extractor (tests/fixtures/promql.py): examples, then properties over
generated expressions whose metric and label names are known, and over arbitrary text."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.promql import GROUPING, KEYWORDS, Names, names, tokenize


@pytest.mark.parametrize(
    ("expression", "metrics", "labels"),
    [
        ("up", {"up"}, set()),
        (
            'sum by (namespace, name) (rate(eventfleet_consumer_dlq_total{reason="x"}[5m]))',
            {"eventfleet_consumer_dlq_total"},
            {"namespace", "name", "reason"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(a_bucket[$__rate_interval])))",
            {"a_bucket"},
            {"le"},
        ),
        ("a > on(x) group_left(y) b and c unless d or e", {"a", "b", "c", "d", "e"}, {"x", "y"}),
        ('{__name__="metric_x", job="j"}', {"metric_x"}, {"__name__", "job"}),
        ("max_over_time(deriv(x[10m:1m])[1h:]) offset 5m", {"x"}, set()),
        ("x @ start() + Inf - NaN * 1e3 + 0x1F", {"x"}, set()),
        ('sum(x) without (by, on) > bool 2 # a comment with y{z="w"}', {"x"}, {"by", "on"}),
        ('a{l=~"sum(b)", m!="{c}"}', {"a"}, {"l", "m"}),
        (
            "job:rate5m:sum / ignoring(instance) job:total",
            {"job:rate5m:sum", "job:total"},
            {"instance"},
        ),
        (
            'count_values("v", x) or topk(3, y) or label_replace(z, "a", "$1", "b", "(.*)")',
            set("xyz"),
            set(),
        ),
        ('x{namespace=~"$namespace", name=~"${name}"}', {"x"}, {"namespace", "name"}),
    ],
)
def test_examples(expression: str, metrics: set[str], labels: set[str]) -> None:
    assert names(expression) == Names(frozenset(metrics), frozenset(labels))


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ('x{a="b}', "unterminated string"),
        ("sum(x", "unclosed '('"),
        ("x[5m)", "unbalanced ')'"),
        ("x ; y", "';'"),
        ('{__name__=~"x.*"}', "__name__ needs `=`"),
        ("x[five]", "inside a range"),
    ],
)
def test_malformed_text_is_refused_with_its_position(expression: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        names(expression)


# -------------------------------------------------------------------------- properties

RESERVED = KEYWORDS | GROUPING | {"inf", "nan", "__name__"} | {"Inf", "NaN"}
identifiers = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,12}\Z").filter(
    lambda word: word not in RESERVED and word.lower() not in {"inf", "nan"}
)
metric_names = st.one_of(identifiers, st.builds(lambda a, b: f"{a}:{b}", identifiers, identifiers))
# Strings hold anything, including brackets, quotes (escaped) and words that look like names.
string_texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n"))
durations = st.sampled_from(["5m", "1h30m", "30s", "$__rate_interval", "${__range}", "250ms"])
FUNCTIONS = ("rate", "increase", "abs", "deriv", "sum_over_time", "max_over_time", "changes")
AGGREGATIONS = ("sum", "max", "min", "avg", "count", "group")
OPERATORS = ("+", "-", "*", "/", ">", "==", "!=", "and", "or", "unless", "> bool")


@dataclass(frozen=True)
class Expr:
    text: str
    metrics: frozenset[str]
    labels: frozenset[str]

    def __or__(self, other: Expr) -> tuple[frozenset[str], frozenset[str]]:
        return self.metrics | other.metrics, self.labels | other.labels


def quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@st.composite
def selectors(draw: st.DrawFn) -> Expr:
    metric = draw(metric_names)
    matchers = draw(
        st.lists(
            st.tuples(identifiers, st.sampled_from(["=", "!=", "=~", "!~"]), string_texts),
            max_size=3,
        )
    )
    text = metric
    braces: bool = draw(st.booleans())  # `x{}` is valid PromQL too
    if matchers or braces:
        inside = ", ".join(f"{label}{op}{quoted(value)}" for label, op, value in matchers)
        text = f"{text}{{{inside}}}"
    if draw(st.booleans()):
        text = f"{text}[{draw(durations)}]"
        text = f"{draw(st.sampled_from(FUNCTIONS))}({text})"
    if draw(st.booleans()):
        text = f"{text} offset {draw(st.sampled_from(['5m', '1d']))}"
    return Expr(text, frozenset({metric}), frozenset(label for label, _, _ in matchers))


def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    grouping = st.lists(identifiers, max_size=3)

    def aggregate(inner: Expr, name: str, by: list[str], where: str) -> Expr:
        group = f"{'by' if where == 'before' else 'without'} ({', '.join(by)})"
        if where == "before":
            body = f"{name} {group} ({inner.text})"
        else:
            body = f"{name}({inner.text}) {group}"
        return Expr(body, inner.metrics, inner.labels | set(by))

    def binary(left: Expr, op: str, right: Expr, on: list[str], left_join: list[str]) -> Expr:
        matching = f" on({', '.join(on)}) group_left({', '.join(left_join)})" if on else ""
        metrics, labels = left | right
        return Expr(
            f"({left.text}) {op}{matching} ({right.text})",
            metrics,
            labels | set(on) | (set(left_join) if on else set()),
        )

    def call(inner: Expr, function: str, quantile: float) -> Expr:
        arguments = {
            "histogram_quantile": f"{quantile}, {inner.text}",
            "clamp_min": f"{inner.text}, 1",
        }.get(function, inner.text)
        return Expr(f"{function}({arguments})", inner.metrics, inner.labels)

    return st.one_of(
        st.builds(
            aggregate,
            children,
            st.sampled_from(AGGREGATIONS),
            grouping,
            st.sampled_from(["before", "after"]),
        ),
        st.builds(binary, children, st.sampled_from(OPERATORS), children, grouping, grouping),
        st.builds(
            call,
            children,
            st.sampled_from(("abs", "clamp_min", "histogram_quantile", "vector")),
            st.floats(0, 1),
        ),
        children.map(lambda e: Expr(f"({e.text})", e.metrics, e.labels)),
    )


numbers = st.sampled_from(["1", "0.5", "1e3", "Inf", "NaN", "0x1f", ".5"]).map(
    lambda n: Expr(n, frozenset(), frozenset())
)
expressions = st.recursive(st.one_of(selectors(), numbers), extend, max_leaves=8)


@given(expressions)
def test_generated_expressions_give_exactly_their_names(expression: Expr) -> None:
    assert names(expression.text) == Names(expression.metrics, expression.labels)


@given(st.text())
def test_any_text_gives_names_or_a_value_error(text: str) -> None:
    try:
        found = names(text)
    except ValueError:
        return
    assert all(isinstance(name, str) and name for name in found.metrics)


@given(expressions)
def test_tokens_cover_the_text_but_its_spaces(expression: Expr) -> None:
    """Nothing is dropped or invented: the tokens put back together are the text without its
    whitespace outside strings."""
    tokens = tokenize(expression.text)
    rebuilt = "".join(token.text for token in tokens)
    assert len(rebuilt) <= len(expression.text)
    assert all(expression.text[t.at : t.at + len(t.text)] == t.text for t in tokens)
