"""`python manage.py benchmark <name> [options]`: published, re-runnable speed measurements.

Each benchmark is a module `audiences.benchmarks.<name>` with `add_arguments(parser)` and
`run(options, stdout)`. Run `python manage.py benchmark --help` for the list.
"""

import importlib
import pkgutil

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

import audiences.benchmarks


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(audiences.benchmarks.__path__)
                  if not m.name.startswith("_"))


class Command(BaseCommand):
    help = "Run a benchmark: " + ", ".join(available())

    def add_arguments(self, parser):
        subparsers = parser.add_subparsers(dest="benchmark", required=True,
                                           parser_class=type(parser))
        for name in available():
            module = importlib.import_module(f"audiences.benchmarks.{name}")
            sub = subparsers.add_parser(name, help=(module.__doc__ or "").strip().split("\n")[0],
                                        called_from_command_line=getattr(
                                            parser, "called_from_command_line", None))
            module.add_arguments(sub)

    def handle(self, *args, **options):
        name = options["benchmark"]
        if name not in available():
            raise CommandError(f"Unknown benchmark {name!r}; choose from {available()}")
        module = importlib.import_module(f"audiences.benchmarks.{name}")
        if name != "pql":  # every other benchmark works in the configured database
            self._migrate()
        module.run(options, self.stdout)

    def _migrate(self) -> None:
        """A fresh benchmark database gets the schema first, rather than a missing-table error
        (nothing to do takes a moment)."""
        call_command("migrate", verbosity=0, interactive=False)
