"""`python manage.py create_streaming_connection NAME [--org IMS_ORG_ID] [--sandbox NAME]
[--authenticated]`: create an HTTP inlet and print its id (only the id, for scripts)."""

from django.core.management.base import BaseCommand, CommandError

from audiences.services.datasets import streaming_connection_create
from portal.api_auth import resolve_sandbox
from portal.errors import SiftError
from portal.models import Organization
from portal.scope import sandbox_scope


class Command(BaseCommand):
    help = "Create a streaming connection (inlet) and print its inlet id."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--org", help="IMS org id (needed when there are several)")
        parser.add_argument("--sandbox", help="sandbox name (default: the default sandbox)")
        parser.add_argument("--authenticated", action="store_true",
                            help="require a bearer token on /collection requests")

    def handle(self, *args, **opts):
        orgs = Organization.objects.all()
        if opts["org"]:
            orgs = orgs.filter(ims_org_id=opts["org"])
        found = list(orgs[:2])
        if len(found) != 1:
            raise CommandError(f"No organization {opts['org']}." if opts["org"] else
                               "Name the organization with --org (there are "
                               f"{'none' if not found else 'several'}).")
        try:
            sandbox = resolve_sandbox(found[0], opts["sandbox"])
            with sandbox_scope(sandbox):
                connection = streaming_connection_create(
                    name=opts["name"], authentication_required=opts["authenticated"])
        except SiftError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(connection.inlet_id)
