from django.core.management.base import BaseCommand, CommandError

from portal.errors import SiftError
from portal.services import organization_create


class Command(BaseCommand):
    help = "Create an organization (IMS org id) with its default production sandbox."

    def add_arguments(self, parser):
        parser.add_argument("ims_org_id")
        parser.add_argument("--sandbox", default="prod", help="default sandbox name (prod)")
        parser.add_argument("--name", default="")

    def handle(self, *args, **opts):
        try:
            org, created = organization_create(ims_org_id=opts["ims_org_id"], name=opts["name"],
                                               sandbox_name=opts["sandbox"])
        except SiftError as exc:
            raise CommandError(exc.message) from exc
        verb = "Created" if created else "Already exists:"
        sandboxes = ", ".join(s.name for s in org.sandboxes.all())
        self.stdout.write(f"{verb} {org.ims_org_id} (sandboxes: {sandboxes})")
