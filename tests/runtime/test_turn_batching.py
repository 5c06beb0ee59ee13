"""End of turn at scale: every call's predictions batched through one model, with a deadline.

The windows are cut from a real recording (the caller's speech, then silence of different
lengths), so the model gives a spread of probabilities on both sides of its threshold. The
unbatched reference is what the framework's own local transport does: one `EOT.predict` per
request.
"""

from __future__ import annotations

import asyncio
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from livekit.agents.inference.eot.languages import LOCAL_LANGUAGES
from livekit.agents.language import LanguageCode
from livekit.local_inference import EOT, EOT_MAX_SAMPLES

from runtime.audio_io import to_frames
from runtime.providers import (
    EOT_FALLBACK_PROBABILITY,
    TurnPredictor,
    build_turn_detector,
    native_eot_runner,
)

WAV = Path(__file__).parent / "data" / "book_a_table_for_two.wav"
CALLS = 20
THRESHOLD = LOCAL_LANGUAGES["en"]


def speech() -> np.ndarray:
    with wave.open(str(WAV)) as recording:
        assert recording.getframerate() == 16000
        return np.frombuffer(recording.readframes(recording.getnframes()), dtype=np.int16)


def windows() -> list[np.ndarray]:
    """One window per call: the speech cut at different points, followed by some silence."""
    pcm = speech()
    cuts = np.linspace(len(pcm) // 3, len(pcm), 5).astype(int)
    tails = (0.0, 0.2, 0.5, 0.8)
    result = []
    for cut in cuts:
        for tail in tails:
            padded = np.concatenate([pcm[:cut], np.zeros(int(tail * 16000), dtype=np.int16)])
            result.append(np.ascontiguousarray(padded[-EOT_MAX_SAMPLES:]))
    assert len(result) == CALLS
    return result


class GatedRunner:
    """The native model, held on its first batch until the test lets it go."""

    def __init__(self) -> None:
        self.model = native_eot_runner()
        self.gate = threading.Event()
        self.batches: list[int] = []

    def __call__(self, batch: list[np.ndarray]) -> list[float]:
        self.gate.wait(timeout=30)
        self.batches.append(len(batch))
        return self.model(batch)


@pytest.fixture(scope="module")
def reference() -> list[float]:
    model = EOT()
    return [float(model.predict(window)) for window in windows()]


def test_the_windows_fall_on_both_sides_of_the_threshold(reference):
    # otherwise comparing decisions below would prove little
    assert any(p < THRESHOLD for p in reference) and any(p >= THRESHOLD for p in reference)


def test_twenty_calls_batched_get_the_same_decisions_as_one(reference):
    runner = GatedRunner()
    predictor = TurnPredictor(runner)
    try:
        futures = [predictor.submit(window, deadline=float("inf")) for window in windows()]
        runner.gate.set()
        batched = [future.result(timeout=30) for future in futures]
    finally:
        predictor.close()
    # whatever had queued when the model thread woke went first; everything that came while
    # it ran went in one more batch: twenty calls, at most two model passes
    assert sum(runner.batches) == CALLS and len(runner.batches) <= 2
    assert batched == pytest.approx(reference, abs=1e-6)
    assert [p < THRESHOLD for p in batched] == [p < THRESHOLD for p in reference]


def test_one_call_alone_gets_the_same_probabilities(reference):
    predictor = TurnPredictor()
    try:
        alone = [
            predictor.submit(window, deadline=float("inf")).result(timeout=30)
            for window in windows()
        ]
    finally:
        predictor.close()
    assert alone == pytest.approx(reference, abs=1e-6)


async def _predict_through_a_session_stream(detector, pcm: np.ndarray) -> tuple[float, np.ndarray]:
    """A call's detector stream holding `pcm` as the caller's audio, asked for a prediction."""
    stream = detector.stream()
    try:
        transport = stream._transport
        for frame in to_frames(pcm.tobytes(), 16000):
            transport.push_frame(frame)  # what the stream's audio task does with each frame
        window = transport._buf.read().copy()
        event = await stream.predict()
        return event.end_of_turn_probability, window
    finally:
        await stream.aclose()


async def test_session_streams_predict_through_the_shared_model():
    predictor = TurnPredictor()
    try:
        detector = build_turn_detector(predictor, deadline=30.0)
        assert detector.model == "turn-detector-v1-mini"
        pcm = speech()
        results = await asyncio.gather(
            *(_predict_through_a_session_stream(detector, pcm) for _ in range(5))
        )
    finally:
        predictor.close()
    model = EOT()
    for probability, window in results:
        assert probability == pytest.approx(float(model.predict(window)), abs=1e-6)
    assert sum(predictor.batch_sizes) == 5


class SlowRunner:
    """A model that answers only when told to, recording what it was asked."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.windows: list[np.ndarray] = []

    def __call__(self, batch: list[np.ndarray]) -> list[float]:
        self.windows.extend(batch)
        self.release.wait(timeout=30)
        return [0.0] * len(batch)


async def test_a_late_prediction_falls_back_to_vad_endpointing():
    runner = SlowRunner()
    predictor = TurnPredictor(runner)
    try:
        detector = build_turn_detector(predictor, deadline=0.05)
        stream = detector.stream()
        try:
            first = await stream.predict()
            # "the turn ended": at or over the threshold, the session commits after the
            # minimum endpointing delay instead of waiting the maximum
            assert first.end_of_turn_probability == EOT_FALLBACK_PROBABILITY
            assert EOT_FALLBACK_PROBABILITY >= await stream.unlikely_threshold(LanguageCode("en"))
            second = await stream.predict()  # queued behind the stuck one: late as well
            assert second.end_of_turn_probability == EOT_FALLBACK_PROBABILITY
        finally:
            await stream.aclose()
        runner.release.set()
        # the model gets to the queue again; the second request, long past its deadline,
        # is dropped rather than run
        after = predictor.submit(np.zeros(160, dtype=np.int16), deadline=float("inf"))
        assert after.result(timeout=30) == 0.0
    finally:
        predictor.close()
    assert len(runner.windows) == 2  # the first request and `after`, not the late second
    assert predictor.expired == 1
