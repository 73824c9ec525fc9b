"""The password rules every password of ours follows (pure): what is wrong with a password, if anything.

They follow NIST SP 800-63B's advice: a minimum length and no composition rules (any characters,
spaces welcome), but no password that guessers try first:
- at least MIN_LENGTH characters;
- not one character or a short piece typed over and over (`aaaaaaaaaaaa`, `abababababab`,
  `hellohellohello`, also with digits or symbols added: `monkeymonkey1`), nor a handful of characters
  shuffled (fewer than MIN_DISTINCT different ones);
- not a walk along the alphabet, the digits or the keyboard (`abcdefghijkl`, `987654321098`,
  `qwertyuiopas`, `1qaz2wsx3edc`): the password breaks into at most MAX_RUNS such runs, or into runs
  of RUN_LENGTH characters or more on average;
- not the username, nor containing it (or it backwards, or the part before an @), when it has at
  least MIN_USERNAME characters; case is ignored;
- not in the shipped list of common passwords (common_passwords.txt beside this module: where it
  comes from is in its header), case ignored, nor such a password with only digits or symbols added
  before or after it (`password1234!`, `2024dragon!!`) or look-alike characters inside it
  (`p@ssw0rd2024`), when that password has at least MIN_COMMON_CORE characters.
The list is read once, when the module is imported; the checks themselves read nothing.
"""

from __future__ import annotations

from pathlib import Path

MIN_LENGTH = 12
MIN_DISTINCT = 5
MAX_RUNS = 3
RUN_LENGTH = 4
MIN_USERNAME = 3
MIN_COMMON_CORE = 4
MAX_AFFIX = 16  # digits or symbols added around a common password that are looked through

# What the password page says of the rules, one line each (the checks below are the rules).
RULES = (
    f"At least {MIN_LENGTH} characters; a few words with spaces between them make a good password.",
    "Not one character or a short pattern repeated (aaaa, abab).",
    "Not a run along the alphabet, the digits or the keyboard (abcd, 4321, qwerty).",
    "Not your username, nor containing it.",
    "Not a common password, nor one with only digits or symbols added (Password1234!).",
)

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")
COMMON_PASSWORDS = frozenset(
    line.strip().lower() for line in COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#"))

# The keyboard (US QWERTY) as rows of keys, each row's horizontal offset in key widths; a shifted
# character is its key's (! is 1). Keys are neighbours side by side, or in the next row up or down
# within three quarters of a key.
KEY_ROWS = (("`1234567890-=", 0.0), ("qwertyuiop[]\\", 1.5), ("asdfghjkl;'", 1.75), ("zxcvbnm,./", 2.25))
SHIFTED = dict(zip("~!@#$%^&*()_+{}|:\"<>?", "`1234567890-=[]\\;',./", strict=True))
KEY_PLACES = {key: (row, index + offset) for row, (keys, offset) in enumerate(KEY_ROWS)
              for index, key in enumerate(keys)}
# Characters written for the letters they look like, inside a word (p@ssw0rd).
LOOK_ALIKES = ({"@": "a", "4": "a", "0": "o", "3": "e", "$": "s", "5": "s", "7": "t", "!": "i", "1": "i"},
               {"@": "a", "4": "a", "0": "o", "3": "e", "$": "s", "5": "s", "7": "t", "!": "i", "1": "l"})


def password_problem(password: str, username: str = "") -> str | None:
    """What makes `password` unacceptable for the account `username`, as a sentence to show the
    person choosing it; None when it follows every rule."""
    if len(password) < MIN_LENGTH:
        return f"Passwords need at least {MIN_LENGTH} characters; a few words with spaces between them are easy " \
               "to remember."
    lowered = password.lower()
    if _contains_username(lowered, username.lower()):
        return "This password contains your username; choose one that does not."
    if _repeats(lowered) or _repeats(_core(lowered), half_of=len(lowered)) or len(set(lowered)) < MIN_DISTINCT:
        return "This password repeats a character or a short pattern (like aaaa or abab); choose something " \
               "less predictable."
    runs = _runs(lowered)
    if runs <= MAX_RUNS or runs * RUN_LENGTH <= len(lowered):
        return "This password runs along the alphabet, the digits or the keyboard (like abcd, 4321 or qwerty); " \
               "choose something less predictable."
    if lowered in COMMON_PASSWORDS:
        return "This password is too common; choose another."
    if _common_with_additions(lowered):
        return "This password is a common one with a few characters added; choose another."
    return None


def _contains_username(lowered: str, username: str) -> bool:
    names = {username, username[::-1], username.split("@", 1)[0]}
    return any(len(name) >= MIN_USERNAME and name in lowered for name in names)


def _letters_span(lowered: str) -> tuple[int, int] | None:
    """Where its first letter is and where its last letter ends; None without letters."""
    letters = [index for index, char in enumerate(lowered) if char.isalpha()]
    return (letters[0], letters[-1] + 1) if letters else None


def _core(lowered: str) -> str:
    """The password without the digits and symbols before its first letter and after its last."""
    span = _letters_span(lowered)
    return lowered[span[0]:span[1]] if span else ""


def _repeats(lowered: str, half_of: int = 0) -> bool:
    """Is it a piece shorter than MIN_LENGTH typed over and over (the last time perhaps cut short)?
    With `half_of`, only if it is at least half as long as that (a password with a few digits or
    symbols added to a repetition)."""
    if len(lowered) * 2 < half_of:
        return False
    for size in range(1, min(len(lowered) // 2, MIN_LENGTH - 1) + 1):
        piece = lowered[:size]
        if (piece * (len(lowered) // size + 1))[:len(lowered)] == lowered:
            return True
    return False


def _runs(lowered: str) -> int:
    """Into how many runs the password breaks, a run being characters each of which repeats the one
    before it, or follows it along the alphabet, the digits (9 then 0 too) or the keyboard, either way."""
    return 1 + sum(not _follows(before, after) for before, after in zip(lowered, lowered[1:], strict=False))


def _follows(before: str, after: str) -> bool:
    before, after = SHIFTED.get(before, before), SHIFTED.get(after, after)
    if before == after:
        return True
    if before.isdigit() and after.isdigit() and before.isascii() and after.isascii():
        return (int(before) - int(after)) % 10 in (1, 9)
    if before.isalpha() and after.isalpha() and before.isascii() and after.isascii() \
            and abs(ord(before) - ord(after)) == 1:
        return True
    return _neighbours(before, after)


def _neighbours(first: str, second: str) -> bool:
    if first not in KEY_PLACES or second not in KEY_PLACES:
        return False
    (row, place), (other_row, other_place) = KEY_PLACES[first], KEY_PLACES[second]
    if row == other_row:
        return abs(place - other_place) == 1
    return abs(row - other_row) == 1 and abs(place - other_place) <= 0.75


def _common_with_additions(lowered: str) -> bool:
    """Is it a common password with digits or symbols before or after it, or look-alike characters
    inside it? The common password is what is left once some of those are taken off either end."""
    span = _letters_span(lowered)
    if span is None:
        return False
    first, end_of_letters = span
    inside = lowered[first:end_of_letters]
    variants = {lowered} | {lowered[:first] + "".join(swap.get(char, char) for char in inside)
                            + lowered[end_of_letters:] for swap in LOOK_ALIKES}
    starts = range(max(0, first - MAX_AFFIX), first + 1)
    ends = range(end_of_letters, min(len(lowered), end_of_letters + MAX_AFFIX) + 1)
    return any(variant[start:end] in COMMON_PASSWORDS
               for variant in variants for start in starts for end in ends if end - start >= MIN_COMMON_CORE)
