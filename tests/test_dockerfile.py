"""Dockerfile text for values from users: quoting, and labels in one instruction
(what the engine reads back from them is tested in test_dockerfile_engine.py)."""

from __future__ import annotations

import pytest

from gsc.dockerfile import label_instruction, quoted


def test_quoting_escapes_quotes_backslashes_and_dollars() -> None:
    assert quoted('a"b\\c$d') == '"a\\"b\\\\c\\$d"'
    assert quoted("") == '""'
    assert quoted("it's {x} = y") == '"it\'s {x} = y"'


def test_labels_are_one_instruction_one_label_a_line_in_key_order() -> None:
    instruction = label_instruction({"b.key": "two words", "a.key": "$HOME"})

    assert instruction.text == 'LABEL a.key="\\$HOME" \\\n      b.key="two words"'
    assert instruction.build_args == {}


def test_a_value_with_a_line_break_comes_from_a_build_argument() -> None:
    instruction = label_instruction(
        {"a": "plain", "b": "two\nlines", "c": "carriage\rreturn", "d": "tab\tok"}
    )

    assert instruction.text == (
        "ARG GSC_LABEL_0 GSC_LABEL_1\n"
        'LABEL a="plain" \\\n'
        '      b="${GSC_LABEL_0}" \\\n'
        '      c="${GSC_LABEL_1}" \\\n'
        '      d="tab\tok"'
    )
    assert instruction.build_args == {
        "GSC_LABEL_0": "two\nlines",
        "GSC_LABEL_1": "carriage\rreturn",
    }


def test_no_labels_no_instruction() -> None:
    assert label_instruction({}).text == ""


@pytest.mark.parametrize("key", ["", "a b", "a=b", 'a"', "$a", ".a", "a\n"])
def test_a_key_that_is_not_a_plain_name_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="label key"):
        label_instruction({key: "value"})
