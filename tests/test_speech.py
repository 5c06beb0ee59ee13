"""The word-error-rate check that the speech tests lean on."""

import pytest

from tests.speech import word_error_rate


@pytest.mark.parametrize(
    ("said", "heard", "rate"),
    [
        ("What are your opening hours?", "what are your opening hours", 0.0),
        ("What are your opening hours?", "What are your opening nowers?", 0.2),
        ("Thank you, goodbye.", "thank you good bye", 2 / 3),
        ("Thank you, goodbye.", "", 1.0),
        ("", "", 0.0),
    ],
)
def test_word_error_rate(said, heard, rate):
    assert word_error_rate(said, heard) == pytest.approx(rate)
