import math

import pytest
import vowpalwabbit

from bandit.encoding import FeatureError, action_text, cb_lines, context_text, escape, features_text

NASTY = ["a|b", "a:b", "a b", "tab\there", "new\nline", "100%", "|", ":", " ", "'quote", "é ü 漢字", "a\r\nb"]


@pytest.mark.parametrize("text", NASTY)
def test_escape_leaves_one_token_without_separators(text):
    out = escape(text)
    assert out and not any(c in out for c in "|: \t\n\r")


def test_escape_is_injective_on_tricky_pairs():
    assert escape("a b") != escape("a_b") != escape("a%20b")
    assert len({escape(t) for t in NASTY}) == len(NASTY)


def test_values_strings_numbers_booleans_lists_and_nesting():
    text = features_text({"s": "x y", "n": 2, "f": 1.5, "b": True, "tags": ["p", "q"], "v": [0.5, 2],
                          "o": {"inner": "z", "deep": {"k": 1}}})
    assert text.split() == ["s=x%20y", "n:2.0", "f:1.5", "b=true", "tags=p", "tags=q", "v[0]:0.5", "v[1]:2.0",
                            "o.inner=z", "o.deep.k:1.0"]


def test_context_objects_become_capitalised_namespaces():
    assert context_text({"user": {"segment": "new"}, "page": {"type": "home"}}) == "|User segment=new |Page type=home"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected_with_the_field(value):
    with pytest.raises(FeatureError) as info:
        context_text({"user": {"score": value}})
    assert info.value.field == "context.user.score"


@pytest.mark.parametrize("value", [None, object(), b"bytes"])
def test_unsupported_values_are_rejected(value):
    with pytest.raises(FeatureError) as info:
        features_text({"bad": value}, "candidates[2].features")
    assert info.value.field == "candidates[2].features.bad"


def test_nasty_input_cannot_break_the_vw_line_format():
    """Every nasty string as key and value still parses to exactly the features we meant."""
    ws = vowpalwabbit.Workspace("--cb_explore_adf --quiet")
    context = {"user": {t: t for t in NASTY}}
    actions = [action_text({"id": t, "features": {t: 1.0}}) for t in NASTY]
    lines = cb_lines(context_text(context), actions, label=(0, -1.0, 0.5))
    assert all("\n" not in line for line in lines)
    ws.learn(lines)  # would raise on a malformed label or namespace
    pmf = ws.predict(cb_lines(context_text(context), actions))
    assert len(pmf) == len(NASTY)
    examples = ws.parse(lines)
    shared, first_action = examples[0], examples[1]
    assert shared.get_feature_number() in (len(NASTY), len(NASTY) + 1)  # + VW's constant feature
    assert shared.num_namespaces() <= 2  # |User and maybe the constant namespace
    assert first_action.get_feature_number() in (2, 3)  # id and one feature
    ws.finish_example(examples)
    ws.finish()
