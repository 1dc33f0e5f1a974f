"""`python manage.py pql check EXPR` and `python manage.py pql eval EXPR --profiles P.jsonl
--events E.jsonl [--now ISO]`: try a definition before saving it.

Files for `eval` (JSON Lines):
- profiles: one merged profile per line; its id is the `id` key, else `_id`, else the first
  identity in `identityMap`, else the line number.
- events: one ExperienceEvent per line; it belongs to the profile whose id is its `profileId`
  key, or that shares an identity (namespace + id) with it through `identityMap`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from audiences.eligibility import RULESETS, classify
from audiences.pql import PQLError, parse


def _identities(record: dict) -> set[tuple[str, str]]:
    out = set()
    for namespace, entries in (record.get("identityMap") or {}).items():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id"):
                out.add((namespace.lower(), str(entry["id"])))
    return out


def _profile_id(record: dict, line: int) -> str:
    for key in ("id", "_id"):
        if record.get(key):
            return str(record[key])
    identities = sorted(_identities(record))
    return f"{identities[0][0]}:{identities[0][1]}" if identities else str(line)


def _read_jsonl(path: str) -> list[dict]:
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise CommandError(f"{path}:{number}: not JSON ({exc.msg})") from exc
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from exc
    return rows


class Command(BaseCommand):
    help = "Check a PQL expression (canonical form, references, eligibility) or evaluate it."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True,
                                    parser_class=type(parser))
        check = sub.add_parser("check", help="parse, print canonically, classify")
        check.add_argument("expression")
        check.add_argument("--ruleset", choices=RULESETS, default=RULESETS[0])
        run = sub.add_parser("eval", help="print the ids of matching profiles")
        run.add_argument("expression")
        run.add_argument("--profiles", required=True)
        run.add_argument("--events")
        run.add_argument("--now", help="evaluation instant, ISO-8601 (default: now, UTC)")
        run.add_argument("--segments", default="",
                         help="comma-separated audience ids every profile belongs to")

    def handle(self, *args, **opts):
        try:
            query = parse(opts["expression"])
        except PQLError as error:
            self.stdout.write(json.dumps({"valid": False, "error": error.to_dict()}, indent=2))
            raise CommandError(str(error)) from None
        if opts["action"] == "check":
            verdict = classify(query, ruleset=opts["ruleset"])
            self.stdout.write(json.dumps({
                "valid": True, "canonical": query.to_pql(),
                "references": query.references.to_dict(), "eligibility": verdict.to_dict(),
            }, indent=2))
            return
        now = datetime.now(UTC)
        if opts["now"]:
            try:
                now = datetime.fromisoformat(opts["now"].replace("Z", "+00:00"))
            except ValueError:
                raise CommandError(f"--now is not an ISO-8601 instant: {opts['now']}") from None
            now = now if now.tzinfo else now.replace(tzinfo=UTC)
        profiles = [(_profile_id(r, n), r) for n, r in enumerate(_read_jsonl(opts["profiles"]), 1)]
        by_identity = {}
        for pid, record in profiles:
            for identity in _identities(record):
                by_identity[identity] = pid
        events: dict[str, list] = {pid: [] for pid, _ in profiles}
        for event in _read_jsonl(opts["events"]) if opts["events"] else []:
            owner = str(event.get("profileId")) if event.get("profileId") else next(
                (by_identity[i] for i in _identities(event) if i in by_identity), None)
            if owner in events:
                events[owner].append(event)
        segments = frozenset(s for s in opts["segments"].split(",") if s)
        for pid, record in profiles:
            if query.evaluate(record, events[pid], now=now, segments=segments):
                self.stdout.write(pid)
