from django.core.management.base import BaseCommand, CommandError

from portal.errors import SiftError
from portal.services import user_create


class Command(BaseCommand):
    help = "Create a user (or change their role) in an organization."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--org", required=True, dest="ims_org_id")
        parser.add_argument("--role", required=True, choices=["admin", "marketer", "viewer"])
        parser.add_argument("--password", default=None)
        parser.add_argument("--email", default="")

    def handle(self, *args, **opts):
        try:
            user, created = user_create(username=opts["username"], ims_org_id=opts["ims_org_id"],
                                        role=opts["role"], password=opts["password"],
                                        email=opts["email"])
        except SiftError as exc:
            raise CommandError(exc.message) from exc
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} {user.username} as {opts['role']} of {opts['ims_org_id']}")
