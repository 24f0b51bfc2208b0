"""The Claude Code skill shipped with ml-expert, and where `ml-expert install-skill` writes it.

Claude Code finds skills only at `.claude/skills/<name>/SKILL.md` (project) or
`~/.claude/skills/<name>/SKILL.md` (user), reads `name` and `description` from the front matter,
and requires `name` to equal the folder name.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ml_expert.errors import UsageError

SKILL_NAME = "when-developing-ml-models-use-ml-expert"
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_NAME = 64
MAX_DESCRIPTION = 1024


def skill_text() -> str:
    return resources.files("ml_expert.skill").joinpath("SKILL.md").read_text(encoding="utf-8")


def front_matter(text: str) -> dict[str, str]:
    """The `key: value` lines between the opening and closing `---` (all this skill uses)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError("SKILL.md must start with a '---' front matter line")
    try:
        end = lines.index("---", 1)
    except ValueError:
        raise ValueError("SKILL.md front matter has no closing '---'") from None
    fields: dict[str, str] = {}
    for line in lines[1:end]:
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"front matter line is not 'key: value': {line!r}")
        fields[key.strip()] = value.strip()
    return fields


def check_skill(path: Path) -> dict[str, str]:
    """Apply Claude Code's rules to an installed SKILL.md; return its front matter or raise ValueError."""
    fields = front_matter(path.read_text(encoding="utf-8"))
    name, description = fields.get("name", ""), fields.get("description", "")
    if name != path.parent.name:
        raise ValueError(f"name {name!r} differs from its folder {path.parent.name!r}")
    if not NAME_PATTERN.match(name) or len(name) > MAX_NAME:
        raise ValueError(f"name {name!r}: lowercase letters, digits and single hyphens, at most {MAX_NAME}")
    if not description or len(description) > MAX_DESCRIPTION or "<" in description or ">" in description:
        raise ValueError(f"description must be 1 to {MAX_DESCRIPTION} characters without angle brackets")
    if path.parent.parent.name != "skills" or path.parent.parent.parent.name != ".claude":
        raise ValueError(f"{path} is not under .claude/skills/<name>/")
    return fields


def install(project: Path | None = None, user: bool = False, force: bool = False) -> Path:
    """Write SKILL.md where Claude Code finds it; refuse to overwrite a different file unless forced."""
    if user:
        root = Path.home()
    elif project is not None:
        root = Path(project).expanduser().resolve()
        if not root.is_dir():
            raise UsageError(f"--project {project}: no such folder")
    else:
        raise UsageError("give --project DIR or --user")
    target = root / ".claude" / "skills" / SKILL_NAME / "SKILL.md"
    text = skill_text()
    if target.exists() and target.read_text(encoding="utf-8") != text and not force:
        raise UsageError(f"{target} exists and differs; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    check_skill(target)
    return target
