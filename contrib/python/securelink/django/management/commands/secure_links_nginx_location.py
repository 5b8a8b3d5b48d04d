# SPDX-License-Identifier: MIT
"""manage.py secure_links_nginx_location [--config FILE]: django-nginx-secure-links'
command; prints what `securelinkctl nginx-config` prints, since securelinkd's
configuration, not the Django settings, decides the locations."""

import os
import shutil
import subprocess

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

DEFAULT_CONFIG = "/etc/securelink/securelinkd.conf"


class Command(BaseCommand):
    help = "Prints the nginx include lines and location blocks (securelinkctl nginx-config)"

    def add_arguments(self, parser):
        parser.add_argument("--config", default=None,
                            help=f"securelinkd.conf (default: setting SECURELINK_CONFIG, else "
                                 f"{DEFAULT_CONFIG})")

    def handle(self, *args, **options):
        config = (options["config"] or getattr(settings, "SECURELINK_CONFIG", None)
                  or DEFAULT_CONFIG)
        ctl = getattr(settings, "SECURELINK_CTL", None) or shutil.which("securelinkctl")
        if not ctl or not os.access(ctl, os.X_OK):
            raise CommandError(
                f"securelinkctl {'at ' + ctl + ' ' if ctl else ''}cannot be run: install "
                "securelink, or set SECURELINK_CTL to the program's path")
        p = subprocess.run([ctl, "nginx-config", "-c", config], capture_output=True, text=True)
        if p.returncode != 0:
            raise CommandError(p.stderr.strip() or f"{ctl} nginx-config failed ({p.returncode})")
        self.stdout.write(p.stdout, ending="")
