"""Board keys and their parser: the parser inverts board_key and refuses any other text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventfleet.contract.names import BOARDS, PERIODS, board_key, parse_board_key

IDS = st.text(st.characters(blacklist_characters=":", blacklist_categories=["Cs"]), min_size=1)
KEYS = st.from_regex(r"\A(\d{4}-\d{2}-\d{2}|\d{4}-W\d{2})\Z")


@given(IDS, st.sampled_from(BOARDS), st.sampled_from(PERIODS), KEYS)
def test_a_board_key_parses_back_to_what_made_it(
    game_id: str, board: str, period: str, period_key: str
) -> None:
    key_of_period = "all_time" if period == "all_time" else period_key
    key = board_key(game_id, board, period, key_of_period)
    assert parse_board_key(key) == (game_id, board, period, key_of_period)


@given(st.text())
def test_any_text_parses_to_a_board_or_none_and_never_raises(text: str) -> None:
    found = parse_board_key(text)
    if found is not None:
        assert board_key(*found) == text


def test_other_keys_are_not_boards() -> None:
    for text in (
        "player_stats:g:p1",
        "leaderboard:g:total_score",
        "leaderboard:g:bogus:all_time",
        "leaderboard:g:wins:daily",
        "leaderboard:g:wins:all_time:x",
        "leaderboard::wins:all_time",
        "eventfleet:synced:leaderboard:sink",
    ):
        assert parse_board_key(text) is None, text
