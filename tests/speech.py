"""Checks on recognised speech that hold however the recogniser mishears a word or two.

Speech recognition on a loaded machine is not exact: tests compare what was heard with what was
said by word error rate, never by exact words (exact words only for a fixed WAV through whisper).
"""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(said: str, heard: str) -> float:
    """Word-level edit distance between what was said and what was heard, over the words said."""
    reference, hypothesis = words(said), words(heard)
    if not reference:
        return float(bool(hypothesis))
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(
                previous[j] + 1,  # a word said was not heard
                current[j - 1] + 1,  # a word was heard that was not said
                previous[j - 1] + (ref_word != hyp_word),  # a word was misheard
            )
        previous = current
    return previous[-1] / len(reference)
