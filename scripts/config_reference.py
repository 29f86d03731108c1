"""Write docs/config.md: every Hydra group, option and key of conf/, with its default and comment.

The YAML files under conf/ are the single source of truth: each key carries a comment (on its line
or on the lines just above it). This script turns them into one reference page, and a test checks
that the committed page is up to date, so the documentation cannot drift from the configuration.

    python scripts/config_reference.py            # rewrite docs/config.md
    python scripts/config_reference.py --check    # exit 1 if docs/config.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PAGE = ROOT / "docs" / "config.md"
APPS = {
    "train.yaml": "ais-torch train",
    "segment/segment.yaml": "ais-torch segment",
    "pick/pick.yaml": "ais-torch pick",
}
ROOTS = {"segment": "ais-torch segment"}
"""Commands with a config root of their own; their groups are listed under their name."""
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*):(?P<rest>.*)$")


@dataclass
class Entry:
    key: str
    default: str
    comment: str


@dataclass
class ConfigFile:
    path: Path
    header: str
    entries: list[Entry] = field(default_factory=list)


def _split_comment(text: str) -> tuple[str, str]:
    """``value  # comment`` → (value, comment); a ``#`` inside quotes is not a comment."""
    quote = None
    for i, ch in enumerate(text):
        if ch in "\"'" and quote in (None, ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def parse(path: Path) -> ConfigFile:
    """Keys (dotted for nested mappings), their defaults and comments, plus the file's header."""
    lines = path.read_text().splitlines()
    header: list[str] = []
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        if not lines[i].startswith("# @package"):
            header.append(lines[i][1:].strip())
        i += 1
    parsed = ConfigFile(path, " ".join(header))
    pending: list[str] = []
    stack: list[tuple[int, str]] = []
    in_defaults = False
    for line in lines[i:]:
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            if line[:1].isspace() and parsed.entries and not pending and line.index("#") > 8:
                parsed.entries[-1].comment += " " + stripped[1:].strip()  # wrapped comment
            else:
                pending.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if match is None:  # list items, continuation lines
            if not in_defaults and parsed.entries and not stripped.startswith("-"):
                parsed.entries[-1].default += " " + _split_comment(stripped)[0]
            elif not in_defaults and parsed.entries and stripped.startswith("-"):
                item = _split_comment(stripped)[0]
                parsed.entries[-1].default = (parsed.entries[-1].default + " " + item).strip()
            pending = []
            continue
        indent = len(match["indent"])
        key = match["key"]
        value, comment = _split_comment(match["rest"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if indent == 0:
            in_defaults = key == "defaults"
        if in_defaults or key == "_target_":
            pending = []
            continue
        dotted = ".".join([k for _, k in stack] + [key])
        text = " ".join([*pending, comment]).strip()
        if value:
            parsed.entries.append(Entry(dotted, value, text))
        else:
            stack.append((indent, key))
            parsed.entries.append(Entry(dotted, "", text))
        pending = []
    # a mapping key with children needs no row of its own unless it says something
    keys = [e.key for e in parsed.entries]
    parsed.entries = [
        e
        for e in parsed.entries
        if e.default or e.comment or not any(k.startswith(e.key + ".") for k in keys)
    ]
    return parsed


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _table(entries: list[Entry], prefix: str) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for e in entries:
        key = f"{prefix}{e.key}" if prefix else e.key
        default = f"`{_cell(e.default)}`" if e.default else " "
        rows.append(f"| `{key}` | {default} | {_cell(e.comment)} |")
    return rows


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from the comments in `conf/` by `python scripts/config_reference.py`; "
        "a test fails when this page and `conf/` disagree. Override any key on the command line "
        "(`key=value`), choose a group option with `group=option` (e.g. `arch=unet_s`), and print "
        "the composed configuration of any app with `--cfg job`.",
        "",
    ]
    for name, command in APPS.items():
        path = CONF / name
        if not path.exists():
            continue
        app = parse(path)
        out += [f"## `{command}` — `conf/{name}`", "", app.header, "", *_table(app.entries, "")]
        out.append("")
    skip = {"hydra", "pick", *ROOTS}
    groups = [(p, "") for p in sorted(CONF.iterdir()) if p.is_dir() and not p.is_symlink()]
    groups = [(p, "") for p, _ in groups if p.name not in skip]
    for root, command in ROOTS.items():
        groups += [(p, command) for p in sorted((CONF / root).iterdir()) if p.is_dir()]
    for group, command in groups:
        out += [f"## Group `{group.name}`" + (f" (`{command}`)" if command else ""), ""]
        for option in sorted(group.glob("*.yaml")):
            parsed = parse(option)
            out += [f"### `{group.name}={option.stem}`", ""]
            if parsed.header:
                out += [parsed.header, ""]
            global_package = "@package _global_" in option.read_text()
            prefix = "" if global_package else f"{group.name}."
            if parsed.entries:
                out += [*_table(parsed.entries, prefix), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/config.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
