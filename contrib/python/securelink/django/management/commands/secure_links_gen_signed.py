# SPDX-License-Identifier: MIT
"""manage.py secure_links_gen_signed URL [--seconds N]: django-nginx-secure-links'
command, signing through securelinkd (the default storage's pre_sign_url())."""

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

import securelink


class Command(BaseCommand):
    help = "Prints URL signed by securelinkd (a public URL comes back unchanged)"

    def add_arguments(self, parser):
        parser.add_argument("url", help="a URL as the storage makes it, e.g. /media/private/a.pdf")
        parser.add_argument("--seconds", type=int, default=None,
                            help="lifetime in seconds (default: SECURE_LINK_EXPIRATION_SECONDS, "
                                 "else securelinkd's default_link_ttl)")

    def handle(self, *args, **options):
        sign = getattr(default_storage, "pre_sign_url", None)
        if sign is None:
            raise CommandError(
                f"the default storage {type(default_storage).__module__}."
                f"{type(default_storage).__qualname__} does not sign links (make "
                "securelink.django.SecureLinkStorage the default storage; manage.py check says how)")
        try:
            url = sign(options["url"], options["seconds"])
        except securelink.Error as e:
            raise CommandError(f"securelinkd refused {options['url']!r}: {e}") from None
        except ValueError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(url)
