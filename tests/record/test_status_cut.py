"""On a full disk run.json's final status is written in place over the bytes it holds; a message too
long for them is cut short and says so, or dropped, so the status always lands when it can."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from oomlab.record.status import CUT, _cut_to_fit


@given(st.text(min_size=1, max_size=300), st.integers(min_value=1, max_value=400))
def test_a_cut_message_frees_the_bytes_asked_for_and_keeps_its_start(message, over):
    cut = _cut_to_fit(message, over)
    if cut is None:  # nothing of it fits with the note: the message goes, and null is shorter still
        assert len(json.dumps(message)) - len(json.dumps(CUT)) - over < len(json.dumps(message[0])) - 2
        return
    assert cut.endswith(CUT) and message.startswith(cut[: -len(CUT)])
    assert len(json.dumps(message)) - len(json.dumps(cut)) >= over


def test_non_ascii_is_cut_by_its_encoded_size_not_more():
    message = "é" * 100  # six bytes each in JSON
    cut = _cut_to_fit(message, 40)
    freed = len(json.dumps(message)) - len(json.dumps(cut))
    assert 40 <= freed < 40 + 6
