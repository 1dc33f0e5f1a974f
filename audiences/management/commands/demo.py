"""`python manage.py demo`: the demo organization, its users, and (later) its living data."""

from django.core.management.base import BaseCommand

from portal.services import organization_create, user_create

DEMO_ORG = "DEMO1234@AdobeOrg"
DEMO_USERS = (("admin", "admin", "admin"), ("marketer", "marketer", "marketer"))


class Command(BaseCommand):
    help = "Create (idempotently) the demo organization DEMO1234@AdobeOrg, sandbox prod, users."

    def handle(self, *args, **opts):
        org, created = organization_create(ims_org_id=DEMO_ORG, name="Demo Retail Co.",
                                           sandbox_name="prod")
        self.stdout.write(f"{'Created' if created else 'Using'} organization {org.ims_org_id} "
                          f"(sandbox prod)")
        for username, password, role in DEMO_USERS:
            user_create(username=username, ims_org_id=DEMO_ORG, role=role, password=password)
        self.stdout.write("Sign in as admin/admin (administrator) or marketer/marketer.")
