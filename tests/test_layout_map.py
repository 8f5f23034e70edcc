"""The map of the code a newcomer reads: the README's "Layout" section and each room's `__init__.py`
docstring name every module of that room and no module that is gone, so a module added, moved or
removed without its line in both fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("data", "model", "search/config", "search/tune", "search/runs", "search/recipes", "search/cli")
# A module's own name: `tuner.py`, not the `prepare.py` of a path like `data/prepare.py`.
MODULE = re.compile(r"(?<![\w/.])\w+\.py\b")


def modules(room: str) -> set[str]:
    return {p.name for p in (ROOT / room).glob("*.py") if p.name not in ("__init__.py", "__main__.py")}


def readme_map() -> dict[str, set[str]]:
    """The README's Layout code block as {room: the modules named in its lines}."""
    text = (ROOT / "README.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)
    layout = [s for s in sections if s.startswith("Layout")]
    assert layout, "README.md has no '## Layout' section"
    return rooms_in(layout[0].split("```")[1])


def rooms_in(block: str) -> dict[str, set[str]]:
    """A line starting at the left margin opens a room (its first word); the indented lines under it
    belong to it."""
    rooms: dict[str, set[str]] = {}
    room = None
    for line in block.splitlines():
        if line and not line[0].isspace():
            first = line.split()[0]
            room, line = first.rstrip("/"), line[len(first):]
        if room is not None:
            rooms.setdefault(room, set()).update(MODULE.findall(line))
    return rooms


def docstring_modules(room: str) -> set[str]:
    doc = ast.get_docstring(ast.parse((ROOT / room / "__init__.py").read_text())) or ""
    return set(MODULE.findall(doc))


def test_the_readme_map_names_every_module_of_every_room():
    rooms = readme_map()
    for room in ROOMS:
        assert room in rooms, f"README.md's Layout has no line for {room}/"
        assert rooms[room] == modules(room), (room, "missing:", modules(room) - rooms[room], "gone:", rooms[room] - modules(room))


@pytest.mark.parametrize("room", ROOMS)
def test_each_rooms_docstring_lists_its_modules_and_what_it_may_import(room):
    listed = docstring_modules(room)
    assert listed == modules(room), ("missing:", modules(room) - listed, "gone:", listed - modules(room))
    assert "May import" in (ROOT / room / "__init__.py").read_text()


def test_the_map_reader_gives_each_room_its_own_modules():
    assert MODULE.findall("  tuner.py  the Tuner (data/prepare.py does it)") == ["tuner.py"]
    block = ("data/       votes (imports nothing)\n  pairs.py  CSVs    folds.py  folds\n"
             "search/tune/   tuner.py (Ray Tune), trial.py,\n               budget.py\nconfigs/  quickstart.yaml\n")
    assert rooms_in(block) == {"data": {"pairs.py", "folds.py"}, "search/tune": {"tuner.py", "trial.py", "budget.py"},
                               "configs": set()}
