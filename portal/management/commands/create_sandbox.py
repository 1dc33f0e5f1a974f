from django.core.management.base import BaseCommand, CommandError

from portal.errors import SiftError
from portal.services import sandbox_create


class Command(BaseCommand):
    help = "Create a sandbox in an organization."

    def add_arguments(self, parser):
        parser.add_argument("ims_org_id")
        parser.add_argument("name")
        parser.add_argument("--type", default="development",
                            choices=["development", "production"])

    def handle(self, *args, **opts):
        try:
            sandbox, created = sandbox_create(ims_org_id=opts["ims_org_id"], name=opts["name"],
                                              type=opts["type"])
        except SiftError as exc:
            raise CommandError(exc.message) from exc
        verb = "Created" if created else "Already exists:"
        self.stdout.write(f"{verb} sandbox {sandbox} ({sandbox.type})")
