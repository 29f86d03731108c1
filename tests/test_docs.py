"""The documentation's commands stay true: every documented command names real keys and files.

Commands are taken from the fenced ``bash``/``console``/``sh`` blocks of README.md and docs/*.md.
Hydra apps (train, segment, pick) are composed in-process with the documented overrides, so a
renamed or removed key fails here; the small key=value commands must use keys they accept;
scripts and benchmarks must exist. The generated configuration reference must be current.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys

import pytest
from docs_commands import ROOT, documented_lines, unbracket
from hydra import compose, initialize_config_dir

from ais_torch.config import config_dir

HYDRA_APPS = {"train": ("", "train"), "segment": ("segment", "segment"), "pick": ("pick", "pick")}
SMALL_APPS = ("demo", "export", "inspect", "mesh", "view", "evaluate")

COMMANDS = documented_lines()
_AIS = re.compile(r"(^|\s)(ais-torch\s|-m ais_torch[\s.])")
AIS_COMMANDS = [(p, c) for p, c in COMMANDS if _AIS.search(c) and not c.startswith("copick ")]
"""``copick inference ais-torch …`` is copick's CLI (tests/commands/test_copick_plugin.py)."""


COMMAND_OF = {"models": "inspect"}
"""``python -m ais_torch.models`` is the old spelling of the ``inspect`` command."""


def _app_and_args(command: str) -> tuple[str, list[str]]:
    """``ais-torch VERB …``, ``python -m ais_torch VERB …`` or ``python -m ais_torch.VERB …``."""
    words = shlex.split(command)
    if "ais-torch" in words:
        index = words.index("ais-torch") + 1
    else:
        index = words.index("-m") + 1
        module = words[index]
        if module != "ais_torch":
            return module.removeprefix("ais_torch."), [unbracket(w) for w in words[index + 1 :]]
    verb = words[index] if index < len(words) else "--help"
    return verb, [unbracket(w) for w in words[index + 1 :]]


def test_docs_have_commands() -> None:
    apps = {_app_and_args(c)[0] for _, c in AIS_COMMANDS}
    assert {"train", "segment", "pick", "demo"} <= apps, apps


def test_docs_use_the_console_script() -> None:
    """The README shows the ``ais-torch <verb>`` spelling and says the module form works too."""
    readme = (ROOT / "README.md").read_text()
    assert any(c.startswith("ais-torch ") for p, c in AIS_COMMANDS if p == "README.md")
    assert "python -m ais_torch.<verb>" in readme


@pytest.mark.parametrize(("page", "command"), AIS_COMMANDS, ids=[c for _, c in AIS_COMMANDS])
def test_documented_command_is_valid(page: str, command: str) -> None:
    app, args = _app_and_args(command)
    app = COMMAND_OF.get(app, app)
    args = [a for a in args if a not in ("--cfg", "job", "--help", "-h")]
    if app == "--help":
        assert not args, f"{page}: ais-torch --help takes nothing more"
    elif app in HYDRA_APPS:
        sub, name = HYDRA_APPS[app]
        with initialize_config_dir(str(config_dir() / sub), version_base="1.3"):
            compose(name, overrides=args, return_hydra_config=True)
    elif app in SMALL_APPS:
        module = importlib.import_module(f"ais_torch.commands.{app}")
        keys = getattr(module, "_KEYS", ())
        for arg in args:
            key, sep, _ = arg.partition("=")
            if sep:
                assert key.lstrip("-").replace("-", "_") in keys, f"{page}: {key}= unknown"
    else:
        pytest.fail(f"{page}: ais-torch {app} is not a command")


@pytest.mark.parametrize(
    "command", sorted({c for _, c in COMMANDS if re.match(r"python \S+\.py", c)})
)
def test_documented_scripts_exist(command: str) -> None:
    script = shlex.split(command)[1]
    assert (ROOT / script).exists(), f"{script} is documented but does not exist"


def test_config_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_page_is_linked_from_the_index() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"({page.name}" in index, f"docs/{page.name} is not linked from docs/README.md"
