"""Fixtures for evaluation tests: the tiny fixture suite and the deterministic encoders of encoders.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.encoders import FIXTURE_SUITE, HashingEncoder, RecordingEncoder


@pytest.fixture
def fixture_suite() -> Path:
    return FIXTURE_SUITE


@pytest.fixture
def hashing_encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture
def recording_encoder() -> RecordingEncoder:
    return RecordingEncoder()
