"""The shell commands of the documentation, as a reader would copy them.

Shared by ``test_docs.py`` (do the commands name real keys and files?) and ``test_docs_run.py``
(do they run?). Commands come from the fenced ``bash``/``console``/``sh``/``shell`` blocks of
README.md and docs/*.md; continuation lines are joined, ``$`` prompts and comments dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|console|sh|shell)\n(.*?)^```", re.S | re.M)
_LOOP_START = re.compile(r"(for|while|until)\s")


@dataclass(frozen=True)
class DocCommand:
    """One thing a reader runs: a command line, or a whole shell loop (its lines kept)."""

    page: str  # path relative to the repository root, e.g. "docs/tutorial.md"
    text: str


def _block_lines(body: str) -> list[str]:
    body = re.sub(r"\\\n\s*", " ", body)  # join continuation lines
    lines = []
    for line in body.splitlines():
        line = re.sub(r"^\s*\$\s*", "", line)
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _blocks() -> list[tuple[Path, list[str]]]:
    return [
        (page, _block_lines(body)) for page in PAGES for _, body in FENCE.findall(page.read_text())
    ]


def documented_lines() -> list[tuple[str, str]]:
    """(page name, line) for every command line of the fenced shell blocks (loops split up)."""
    return [(page.name, line) for page, lines in _blocks() for line in lines]


def documented_commands() -> list[DocCommand]:
    """Every runnable unit in page order: single lines, and ``for … done`` loops as one script."""
    found = []
    for page, lines in _blocks():
        name = page.relative_to(ROOT).as_posix()
        loop: list[str] = []
        for line in lines:
            if loop or _LOOP_START.match(line):
                loop.append(line)
                if line == "done" or line.endswith("; done"):
                    found.append(DocCommand(name, "\n".join(loop)))
                    loop = []
            else:
                found.append(DocCommand(name, line))
        if loop:
            found.append(DocCommand(name, "\n".join(loop)))
    return found


def unbracket(word: str) -> str:
    """Usage notation ``[key=value]`` for optional arguments → ``key=value``."""
    if word.startswith("["):
        word = word[1:]
    if word.endswith("]") and word.count("]") > word.count("["):
        word = word[:-1]
    return word
