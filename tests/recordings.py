"""Reading a call recording back in tests: decode its two channels, find where each is loud."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np


def decode_stereo(source: bytes | Path) -> tuple[np.ndarray, int]:
    """An Ogg/Opus recording as (2, samples) floats (caller left, agent right) and its rate.

    Fails unless it is Ogg/Opus with two channels."""
    opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(opened) as container:
        stream = container.streams.audio[0]
        assert (container.format.name, stream.codec_context.name) == ("ogg", "opus")
        assert stream.channels == 2
        frames = [frame.to_ndarray().reshape(2, -1) for frame in container.decode(stream)]
        return np.concatenate(frames, axis=1), stream.rate


def loud_spans(channel: np.ndarray, rate: int, threshold: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of 20 ms windows louder than `threshold` (RMS)."""
    hop = rate // 50
    windows = channel[: len(channel) // hop * hop].reshape(-1, hop)
    loud = np.sqrt((windows**2).mean(axis=1)) > threshold
    spans, start = [], None
    for index, is_loud in enumerate([*loud, False]):
        if is_loud and start is None:
            start = index
        elif not is_loud and start is not None:
            spans.append((start * hop / rate, index * hop / rate))
            start = None
    return spans


def rms(channel: np.ndarray, rate: int, span: tuple[float, float]) -> float:
    """The RMS of `channel` over `span` seconds (0 for an empty span)."""
    part = channel[int(span[0] * rate) : int(span[1] * rate)]
    return float(np.sqrt((part**2).mean())) if len(part) else 0.0
