"""The coach's own spoken phrases (English), shared by the timeline and the live session."""

from __future__ import annotations

from collections.abc import Sequence

COMMAND_WORDS: tuple[str, ...] = (
    "stop",
    "pain",
    "next",
    "pause",
    "repeat",
    "slower",
    "faster",
    "help",
)
"""The spoken commands the intro teaches, in the order it names them."""

COMMANDS_HELP = (
    "You can talk to me at any time. "
    "Say pain if anything hurts, and I stop at once. "
    "Say stop to pause, and stop again to end. "
    "Say next to skip ahead, pause to take a break, and repeat to hear the last instruction again. "
    "Say slower or faster to change the pace, and help to hear this again."
)
"""Full explanation of the voice commands (first session, and the HELP command)."""

COMMANDS_REMINDER = "Say stop, pain, next, pause, repeat, slower, faster or help at any time."
"""Short reminder of the voice commands for a returning user."""

DISCLAIMER_REMINDER = (
    "A reminder: I am not a medical device, and I do not replace your clinician's advice."
)
"""Shortened disclaimer for a returning user."""

RED_FLAGS_REMINDER = (
    "If you notice numbness around the groin, new bladder or bowel trouble, "
    "or a weakening leg, stop and get urgent care."
)
"""Shortened red-flag warning for a returning user; it still names every red flag."""

HOLD_WORD = "Hold."
"""Said as a hold starts, in place of 'one'."""

RELAX = "And relax."
"""Said after a hold that ends the repetition."""

REST = "Rest."
"""Said as the rest between sets starts."""

SWITCH_SIDES = "Rest, then we switch sides."
"""Said between the two sides of an exercise."""

OUTRO = (
    "That's the end of the session. Well done. "
    "Remember: gentle is the point, and more is not better. See you next time."
)
"""Said at the very end."""

ENCOURAGEMENTS: tuple[str, ...] = (
    "Nice and easy.",
    "Good, keep breathing.",
    "That's it, slow and gentle.",
    "Well done, stay relaxed.",
    "Good work. Only a mild stretch, never pain.",
    "Lovely, keep your shoulders soft.",
    "You're doing well.",
    "Steady and calm.",
)
"""Said between some repetitions, in rotation; no two neighbours are equal (even wrapping)."""

_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_word(number: int) -> str:
    """``number`` (0 to 999) in English words: 21 -> 'twenty-one'."""
    if not 0 <= number <= 999:
        raise ValueError(f"number_word handles 0 to 999, got {number}")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    hundreds, rest = divmod(number, 100)
    words = f"{_ONES[hundreds]} hundred"
    return words + (f" and {number_word(rest)}" if rest else "")


def hold_count_word(second: int) -> str:
    """The word said ``second`` seconds into a hold: 'Hold.' at 0, then 'two...', 'three...'."""
    if second == 0:
        return HOLD_WORD
    return f"{number_word(second + 1).capitalize()}."


def rep_count(rep_number: int) -> str:
    """Said after a repetition: "That's five."."""
    return f"That's {number_word(rep_number)}."


def set_announcement(set_number: int, sets: int) -> str:
    """Said as a set starts (only when there is more than one): 'Set two of three.'."""
    return f"Set {number_word(set_number)} of {number_word(sets)}."


def leg_name(leg: str) -> str:
    """How the coach names a leg ('left', 'right' or 'affected', e.g. a ``Leg``).

    'the left leg', or 'your painful leg' while the painful leg is not chosen.
    """
    if leg == "affected":
        return "your painful leg"
    return f"the {leg} leg"


def side_announcement(leg: str, side_index: int, side_count: int) -> str:
    """Said as a side starts: 'First, the left leg.', 'Now the right leg.'."""
    name = leg_name(leg)
    if side_count > 1 and side_index == 0:
        return f"First, {name}."
    if side_count == 1:
        return f"This one is for {name}."
    return f"Now {name}."


def welcome(title: str) -> str:
    """The first sentence of a session."""
    return f"Welcome. Today's session: {title}."


def exercise_title(exercise_index: int, exercise_count: int, name: str) -> str:
    """Said as an exercise starts: 'Exercise two of three: the seated glide.'."""
    if exercise_count == 1:
        return f"Our exercise today: {name}."
    return f"Exercise {number_word(exercise_index + 1)} of {number_word(exercise_count)}: {name}."


def exercise_done(name: str) -> str:
    """Said after an exercise that is not the last one."""
    return f"That's {name} done. Rest a moment before the next one."


def encouragement(turn: int, phrases: Sequence[str] = ENCOURAGEMENTS) -> str:
    """The encouragement for the ``turn``-th time (0-based): a rotation, never a repeat."""
    return phrases[turn % len(phrases)]
