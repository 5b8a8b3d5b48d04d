# SPDX-License-Identifier: MIT
from django.apps import AppConfig


class SecureLinkConfig(AppConfig):
    name = "securelink.django"
    # "django" would clash with Django's own apps' labels.
    label = "securelink"
    verbose_name = "securelink"
