"""The disclosure card of a business as the terminal shows it (docs/BUSINESS.md §3): for
``baat business info`` and the question ``baat send`` asks before the first message."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

STATE_TEXT = {
    "new": "not accepted yet",
    "accepted": "accepted",
    "changed": "CHANGED since you accepted it: your next message waits until you accept again",
    "withdrawn": "withdrawn: the chat is read-only",
}


def card_text(d: dict[str, Any]) -> str:
    """The disclosure card as the terminal shows it (markup escaped: the business wrote it)."""
    badge = "[green]verified by the operator[/]" if d["verified"] else "[yellow]unverified[/]"
    lines = [
        f"[bold]{escape(d['display_name'])}[/] ({escape(d['username'])}) is a business: {badge}",
        f"Legal entity: {escape(d['entity'])} ({d['country']}); contact: {escape(d['contact'])}",
        "Who can read this chat:",
    ]
    for r in d["readers"]:
        devices = ", ".join(str(x) for x in r["devices"])
        lines.append(
            f"  - {escape(r['name'])}, {escape(r['role'])}, in {r['country']} (devices {devices})"
        )
    if len(d["readers"]) == 1:
        lines.append("  (no host or processor: the business runs its own devices)")
    lines += [
        f"For: {escape('; '.join(d['purposes']))}",
        f"Kept: {escape(d['retention'])}",
        f"Profile version {d['version']}; your consent ({d['purpose']}): "
        f"{STATE_TEXT.get(d['state'], d['state'])}",
    ]
    return "\n".join(lines)
