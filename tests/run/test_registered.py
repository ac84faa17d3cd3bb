"""The sentence for task names a worker does not register, with the close matches."""

from __future__ import annotations

from oomlab.run.registered import unknown_names


def test_every_name_known_is_no_sentence():
    assert unknown_names(["a.b", "celery.chord_unlock"], ["a.b"]) is None


def test_an_unknown_name_is_named_with_its_close_match():
    sentence = unknown_names(["proj.resize_image", "x.y"], ["proj.resize_images", "proj.other"])
    assert "'proj.resize_image' (did you mean 'proj.resize_images'?)" in sentence
    assert "'x.y' (no close match)" in sentence
