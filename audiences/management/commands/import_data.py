"""`python manage.py import_data DATASET_ID FILE.jsonl|FILE.csv`: bulk import with a progress bar,
through the same validation and storage path as streaming ingestion."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from audiences.models import Dataset
from audiences.services.imports import DEFAULT_BATCH, import_file
from portal.errors import SiftError
from portal.scope import sandbox_scope

MAX_LISTED_REJECTIONS = 50


class Command(BaseCommand):
    help = "Import a JSONL or CSV file of XDM records into a dataset (see services/imports.py)."

    def add_arguments(self, parser):
        parser.add_argument("dataset_id")
        parser.add_argument("file", type=Path)
        parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                            help="records per transaction")

    def handle(self, *args, **opts):
        # Dataset ids are unique across tenants: the dataset says which sandbox to work in.
        dataset = (Dataset.objects.unscoped().select_related("sandbox__organization")
                   .filter(pk=opts["dataset_id"]).first())
        if dataset is None:
            raise CommandError(f"No dataset {opts['dataset_id']!r}.")
        path: Path = opts["file"]
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        total = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        total -= 1 if path.suffix.lower() == ".csv" else 0
        with sandbox_scope(dataset.sandbox), tqdm(total=max(total, 0), unit="rec",
                                                  file=self.stderr, disable=None) as bar:
            try:
                result = import_file(dataset=dataset, path=path, now=timezone.now(),
                                     batch_size=opts["batch"], progress=bar.update)
            except SiftError as error:
                raise CommandError(str(error)) from None
        for index, reason in result.rejected[:MAX_LISTED_REJECTIONS]:
            self.stdout.write(f"rejected record {index}: {reason}")
        if len(result.rejected) > MAX_LISTED_REJECTIONS:
            self.stdout.write(f"… and {len(result.rejected) - MAX_LISTED_REJECTIONS} more.")
        self.stdout.write(f"Imported {result.accepted} of {result.records} records into "
                          f"{dataset.name} ({dataset.pk}); {len(result.rejected)} rejected.")
