from django.core.management.base import BaseCommand, CommandError

from portal.errors import SiftError
from portal.services import api_token_create


class Command(BaseCommand):
    help = "Create an API bearer token for a user. The token is printed once and stored hashed."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--org", dest="ims_org_id", default=None)
        parser.add_argument("--name", default="")

    def handle(self, *args, **opts):
        try:
            token, raw = api_token_create(username=opts["username"],
                                          ims_org_id=opts["ims_org_id"], name=opts["name"])
        except SiftError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Token for {token.user.username} in {token.organization.ims_org_id} "
                          "(shown once, store it now):")
        self.stdout.write(raw)
