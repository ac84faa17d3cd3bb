"""The sentence for task names a worker does not register, with the close matches."""

from __future__ import annotations

from oomlab.run.registered import unknown_names


def test_every_name_known_is_no_sentence():
    assert unknown_names(["a.b", "celery.chord_unlock"], ["a.b"]) is None


def test_an_unknown_name_is_named_with_its_close_match():
    sentence = unknown_names(["proj.resize_image", "x.y"], ["proj.resize_images", "proj.other"])
    assert "'proj.resize_image' (did you mean 'proj.resize_images'?)" in sentence
    assert "'x.y' (no close match)" in sentence


def test_the_module_path_a_name_shares_with_every_task_of_its_module_is_no_closeness():
    known = ["myproj.tasks.run_program", "myproj.tasks.crunch", "myproj.tasks.boom", "myproj.tasks.fan_out"]
    sentence = unknown_names(["myproj.tasks.run_progam", "myproj.tasks.zzzz"], known)
    assert "'myproj.tasks.run_progam' (did you mean 'myproj.tasks.run_program'?)" in sentence
    assert "'myproj.tasks.zzzz' (no close match)" in sentence
    # a misspelt module is still a close match
    assert "did you mean 'myproj.tasks.crunch'?" in unknown_names(["myproj.task.crunch"], known)
