"""Marks of one life of a topic: a topic deleted and created again restarts its offsets at 0, and nothing marked in
the old one may cover the new one's events."""

from __future__ import annotations

from caves_faust.sink.channels import offset_of, token_of


def test_an_offset_token_names_the_life_of_its_topic():
    assert token_of("A", 41) == "A/41" and offset_of("A/41", "A") == 41
    assert offset_of("A/41", "B") is None  # the old topic's token covers none of the new one's offsets
    assert offset_of("A/41", None) is None


def test_a_token_of_no_known_life_is_taken_for_the_current_one():
    assert token_of(None, 41) == "41"
    assert offset_of("41", "A") == 41 and offset_of("41", None) == 41


def test_no_token_or_not_an_offset_is_no_mark():
    assert offset_of(None, "A") is None and offset_of("", "A") is None and offset_of("A/x", "A") is None
