"""GSM8K data, prompts and exact-match scoring."""

from __future__ import annotations

import pytest

from qwend.verify import gsm8k


def test_vendored_problems_and_their_final_numbers() -> None:
    problems = gsm8k.problems(200)
    assert len(problems) == 200
    assert problems[0].answer == "18"  # Janet's ducks
    assert all("####" not in p.solution for p in problems)
    assert len(gsm8k.shots(50)) == 50
    with pytest.raises(ValueError, match="1-200"):
        gsm8k.problems(201)
    with pytest.raises(ValueError, match="0-50"):
        gsm8k.shots(51)


def test_k_shot_chain_of_thought_messages() -> None:
    problem = gsm8k.problems(1)[0]
    msgs = gsm8k.messages(problem, 4)
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 4 + ["user"]
    assert msgs[1]["content"].endswith(f"The answer is {gsm8k.shots(1)[0].answer}.")
    assert "<<" not in msgs[1]["content"]  # calculator annotations removed
    assert problem.question in msgs[-1]["content"]
    assert len(gsm8k.messages(problem, 0)) == 1


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18. The answer is 18.", "18"),
        ("The answer is $1,250.00", "1250"),
        ("so the answer is: -3.50 and later 7 apples", "-3.5"),
        ("First 5, then 12 ...", "12"),
        ("no digits here", None),
    ],
)
def test_extract_the_final_number(text: str, number: str | None) -> None:
    assert gsm8k.extract(text) == number


def test_exact_match() -> None:
    problem = gsm8k.problems(1)[0]
    assert gsm8k.correct(problem, "She makes 9 * 2 = 18 dollars. The answer is 18.")
    assert not gsm8k.correct(problem, "The answer is 17.")
