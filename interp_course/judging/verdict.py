"""What a check concludes: itemised points with messages a student can act on."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Item:
    """One line of a rubric: what was checked, what it is worth, what the student should read."""

    description: str
    max_points: float
    points: float = 0.0
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points


@dataclass
class Verdict:
    grade_id: str
    items: list[Item] = field(default_factory=list)
    note: str = ""  # said once, above the items (e.g. "your code raised ...")

    @property
    def points(self) -> float:
        return round(sum(item.points for item in self.items), 6)

    @property
    def max_points(self) -> float:
        return round(sum(item.max_points for item in self.items), 6)

    def text(self) -> str:
        """The verdict as the student reads it: one short line per item (✓/✗, points, what was
        checked), and under a line the message that says what went wrong, if any."""
        lines = [f"{self.grade_id}: {self.points:g} / {self.max_points:g} points"]
        if self.note:
            lines.append(self.note)
        for item in self.items:
            mark = "✓" if item.passed else "✗"
            lines.append(f"  {mark} {item.points:g}/{item.max_points:g}  {item.description}")
            if item.message:
                lines.append(f"      {item.message}")
        return "\n".join(lines)
