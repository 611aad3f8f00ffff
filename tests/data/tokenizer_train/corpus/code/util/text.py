"""Text helpers: word counts, wrapping, slugs and a tiny tokenizer."""

import re
import unicodedata
from collections import Counter
from typing import Iterable, Iterator, List

WORD_RE = re.compile(r"\w+", re.UNICODE)
SPACE_RE = re.compile(r"\s+")


def words(text: str) -> List[str]:
    """The lower-cased words of `text`."""
    return [w.lower() for w in WORD_RE.findall(text)]


def word_counts(lines: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for line in lines:
        counts.update(words(line))
    return counts


def most_common(lines: Iterable[str], n: int = 10) -> List[tuple]:
    return word_counts(lines).most_common(n)


def wrap(text: str, width: int = 72) -> List[str]:
    """Greedy line wrapping at spaces; a word longer than `width` gets its own line."""
    lines: List[str] = []
    current = ""
    for word in SPACE_RE.split(text.strip()):
        if not word:
            continue
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def slugify(title: str) -> str:
    """'Hello, World!' -> 'hello-world'; accents are dropped."""
    norm = unicodedata.normalize("NFKD", title)
    ascii_text = norm.encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def tokens(source: str) -> Iterator[tuple]:
    """Yields (kind, text) pairs for numbers, names, operators and strings."""
    spec = [
        ("NUMBER", r"\d+(\.\d*)?([eE][+-]?\d+)?"),
        ("NAME", r"[A-Za-z_][A-Za-z_0-9]*"),
        ("STRING", r"'[^']*'|\"[^\"]*\""),
        ("OP", r"==|!=|<=|>=|[-+*/%<>=(){}\[\],.:]"),
        ("SPACE", r"[ \t]+"),
        ("NEWLINE", r"\n"),
        ("ERROR", r"."),
    ]
    pattern = "|".join(f"(?P<{name}>{regex})" for name, regex in spec)
    for m in re.finditer(pattern, source):
        kind = m.lastgroup
        if kind == "SPACE":
            continue
        if kind == "ERROR":
            raise SyntaxError(f"unexpected character {m.group()!r} at {m.start()}")
        yield kind, m.group()


if __name__ == "__main__":
    sample = "The quick brown fox jumps over the lazy dog. The dog sleeps."
    print(most_common([sample], 3))
    print(wrap(sample * 3, 40))
    print(slugify("Crème Brûlée: a Recipe!"))
    print(list(tokens("x = 3.14 * (y + 2) # ok".split("#")[0])))
