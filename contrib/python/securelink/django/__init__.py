# SPDX-License-Identifier: MIT
"""Django storage whose url() returns links signed by securelinkd.

A drop-in for django-nginx-secure-links' nginx_secure_links.storages.FileStorage:

    INSTALLED_APPS = [..., "securelink.django"]   # its system check, see below
    # Django < 4.2 (Debian 12 has 3.2), which ignores STORAGES:
    DEFAULT_FILE_STORAGE = "securelink.django.SecureLinkStorage"
    # Django >= 4.2:
    STORAGES = {"default": {"BACKEND": "securelink.django.SecureLinkStorage"}, ...}
    SECURELINK_SOCKET = "/run/securelink/securelinkd.sock"   # optional

Files are stored exactly as by Django's FileSystemStorage (MEDIA_ROOT,
MEDIA_URL). What changes is who signs: the secret lives in securelinkd, not
in settings, and securelinkd's own configuration decides which paths are
private. Settings of django-nginx-secure-links:

  SECURE_LINK_EXPIRATION_SECONDS  lifetime of a link when url() gets no
        lifetime; unset: securelinkd's default_link_ttl.
  SECURE_LINK_PRIVATE_PREFIXES / SECURE_LINK_PUBLIC_PREFIXES  securelinkd's
        private_prefixes / public_prefixes decide. When one of these settings
        is given, url() also checks that securelinkd signs every name the
        setting calls private, and raises ImproperlyConfigured if it answers
        with an unsigned link instead: nginx would serve that file to anyone.
        Both given is ImproperlyConfigured, as before.
  SECURE_LINK_SECRET_KEY  unused: import it once with
        `securelinkctl import-key`, so old links keep working, then delete it.
  SECURE_LINK_TOKEN_FIELD / SECURE_LINK_EXPIRES_FIELD  unused: securelinkd's
        token_param / expires_param name the query parameters.

url(name, lifetime=None): lifetime in seconds; None means the default above.
grant_url(dir_name, ttl=None, ip=None): a directory grant for a stream (HLS,
DASH): dir_name is relative to MEDIA_URL like a file's name ("/" added when
missing); returns a base URL ending in "/": every file below the directory
opens at the base URL followed by its name relative to the directory, so a
player given base + "master.m3u8" fetches the variant playlists and segments
too. A public directory comes back as its plain URL.
set_grant_cookie(response, dir_name, ttl=None, ip=None, storage=None): the
same grant as a cookie on response (Path = the directory, Expires, HttpOnly,
SameSite=Lax, Secure when securelinkd's base_url is https), with which the
browser fetches every file below the directory at its plain URL (url()
without signature: MEDIA_URL + name). Returns the Set-Cookie value the daemon
made, or None for a public directory, which needs no cookie: then nothing is
set. storage: the SecureLinkStorage to use (default: the default storage).
ttl None means SECURE_LINK_EXPIRATION_SECONDS, else securelinkd's default.
pre_sign_url(url, seconds=None): the same for a URL already made from a name
(MEDIA_URL + path), as in django-nginx-secure-links; a public one comes back
unsigned (securelinkd's plain link: base_url and the canonical path).

Management commands, with "securelink.django" in INSTALLED_APPS, named as
django-nginx-secure-links names them:
  manage.py secure_links_gen_signed URL [--seconds N]   signs URL through
        securelinkd (pre_sign_url() of the default storage)
  manage.py secure_links_nginx_location [--config FILE]  prints what
        `securelinkctl nginx-config` prints: the include lines and the
        location blocks (setting SECURELINK_CONFIG, default
        /etc/securelink/securelinkd.conf; SECURELINK_CTL names the program)
lifetime=0 (a link that never expires) cannot be had: nginx's secure_link
refuses links without an expiry time, so it raises ValueError, as a negative
lifetime does.

System check securelink.E001 (`manage.py check`, and before runserver and
migrate): when this app is installed, or SECURE_LINK_* / SECURELINK_*
settings are set, the default storage must be SecureLinkStorage; else every
url() is an unsigned link, which nginx refuses (403). A site that signs only
some fields (FileField(storage=SecureLinkStorage())) silences it with
SILENCED_SYSTEM_CHECKS = ["securelink.E001"].
"""

import re
import warnings

import django
# Not "apps": the submodule securelink.django.apps would replace that name.
from django.apps import apps as django_apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage
from django.utils.encoding import filepath_to_uri
from django.utils.functional import cached_property
from django.utils.module_loading import import_string

from securelink import GRANT_COOKIE, Client

# A path grant's fields ahead of the directory: _grant/KID/EXPIRES/TOKEN/DEPTH/.
_PATH_GRANT_RE = re.compile(r"/_grant/[0-9]+/[0-9]+/[A-Za-z0-9_-]+/[0-9]+/")
# A name that is its own URL path below base_url: segments of what urllib's
# quote() always keeps and Django's safe="/~!*()'" adds (no '\\', which it
# turns into '/'), none empty or starting with '.', no '/' in front, so
# urljoin() has nothing to resolve. Most file names are such; one match is
# cheaper than quoting and joining.
_PLAIN_NAME = re.compile(r"[\w~!*()'-][\w.~!*()'-]*(?:/[\w~!*()'-][\w.~!*()'-]*)*",
                         re.ASCII).fullmatch


class SecureLinkStorage(FileSystemStorage):
    def __init__(
        self,
        *args,
        socket=None,
        timeout=5.0,
        cache=True,
        expires_seconds=None,
        private_prefixes=None,
        public_prefixes=None,
        nginx_secret_key=None,
        token_field_name=None,
        expires_field_name=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._socket = socket
        self._timeout = timeout
        self._cache = cache
        self._expires_seconds = expires_seconds
        self._private_prefixes = private_prefixes
        self._public_prefixes = public_prefixes
        # The base_url _unsigned_url() last judged, and its verdict.
        self._judged_base = self._base_concatenates = None
        if nginx_secret_key is not None or getattr(settings, "SECURE_LINK_SECRET_KEY", None):
            warnings.warn(
                "SECURE_LINK_SECRET_KEY is not used by securelink: import it with "
                "`securelinkctl import-key` (links signed with it keep working) and remove "
                "it from the settings",
                stacklevel=2,
            )
        # token_field_name, expires_field_name: accepted for compatibility,
        # securelinkd's token_param / expires_param decide.

    @cached_property
    def client(self):
        """One Client per storage, connected on first use and kept."""
        socket = self._socket or getattr(settings, "SECURELINK_SOCKET", None)
        return Client(socket=socket, timeout=self._timeout, cache=self._cache)

    @property
    def expires_seconds(self):
        if self._expires_seconds is not None:
            return self._expires_seconds
        return getattr(settings, "SECURE_LINK_EXPIRATION_SECONDS", None)

    @cached_property
    def _default_ttl(self):
        # Cached as _prefix_settings is: a property is a function call in
        # every url(), hit or miss.
        return self.expires_seconds

    def _prefixes(self):
        return self._prefix_settings

    @cached_property
    def _prefix_settings(self):
        # Cached as Django caches base_url: a miss would otherwise pay two
        # lookups of absent settings; _clear_cached_properties() forgets it
        # when a test overrides one.
        private = self._private_prefixes
        if private is None:
            private = getattr(settings, "SECURE_LINK_PRIVATE_PREFIXES", None) or []
        public = self._public_prefixes
        if public is None:
            public = getattr(settings, "SECURE_LINK_PUBLIC_PREFIXES", None) or []
        if private and public:
            raise ImproperlyConfigured(
                "Only SECURE_LINK_PRIVATE_PREFIXES or SECURE_LINK_PUBLIC_PREFIXES "
                "should be specified, not both"
            )
        return list(private), list(public)

    def _clear_cached_properties(self, setting, **kwargs):
        super()._clear_cached_properties(setting, **kwargs)
        if setting.startswith("SECURE_LINK_"):
            self.__dict__.pop("_prefix_settings", None)
            self.__dict__.pop("_default_ttl", None)

    def _app_says_private(self, url):
        """None when neither prefix setting is given (securelinkd alone
        decides), else whether the settings call url private, with
        django-nginx-secure-links' rules."""
        private, public = self._prefixes()
        if private:
            return any(url.startswith(self.base_url + p) for p in private)
        if public:
            return not any(url.startswith(self.base_url + p) for p in public)
        return None

    def url(self, name, lifetime=None):
        ttl = self._default_ttl if lifetime is None else self._ttl(lifetime)
        client = self.client
        # Keyed by the name: a hit skips Django's url() as well.
        key = (id(self), self.base_url, name, ttl)
        hit = client._cached(key, ttl)
        if hit is not None:
            return hit
        return self._sign(key, self._unsigned_url(name), ttl)

    def _unsigned_url(self, name):
        """FileSystemStorage.url(name): base_url + filepath_to_uri(name),
        spaces and other unsafe bytes percent-encoded as Django's own
        storages do (securelinkd hashes the decoded path, which is what
        nginx checks). Its urljoin() costs as much as the rest of a miss;
        where it can only concatenate (a base ending in '/', no '.', '..' or
        empty segment to resolve; filepath_to_uri() leaves no ':', '?' or '#'),
        the same string is made directly."""
        base = self.base_url
        if base is not self._judged_base:
            self._base_concatenates = (
                base is not None and base.endswith("/") and "/." not in base
                and "?" not in base and "#" not in base
                and "//" not in base.split("://", 1)[-1].lstrip("/"))
            self._judged_base = base
        if self._base_concatenates:
            if type(name) is str and _PLAIN_NAME(name):
                return base + name
            url = filepath_to_uri(name)
            if url is not None:
                url = url.lstrip("/")
                # urljoin() resolves dot segments and empty ones.
                if url[:1] != "." and "/." not in url and "//" not in url:
                    return base + url
        return super().url(name)

    def pre_sign_url(self, url, seconds=None):
        """django-nginx-secure-links' FileStorage.pre_sign_url(): url is a
        URL as url() makes it (MEDIA_URL + the file's path); returns it
        signed for `seconds` (None: the default lifetime), or unsigned when
        it is public."""
        ttl = self._default_ttl if seconds is None else self._ttl(seconds)
        key = (id(self), None, url, ttl)
        return self.client._cached(key, ttl) or self._sign(key, url, ttl)

    def grant_url(self, dir_name, ttl=None, ip=None):
        """A path grant for the directory dir_name (relative to MEDIA_URL):
        a base URL ending in "/" (see the module documentation)."""
        return self._grant(dir_name, "path", ttl, ip)

    def _grant(self, dir_name, form, ttl, ip):
        ttl = self._default_ttl if ttl is None else self._ttl(ttl)
        if not dir_name.endswith("/"):
            dir_name += "/"
        url = self._unsigned_url(dir_name)
        answer = self.client.grant(url, form=form, ttl=ttl, ip=ip)
        if form == "cookie":
            public = not answer.startswith(GRANT_COOKIE + "=")
        else:
            public = not _PATH_GRANT_RE.search(answer)
        if public:
            self._check_not_private(url)
        return answer

    @staticmethod
    def _ttl(lifetime):
        if lifetime <= 0:
            raise ValueError(
                "The value of `lifetime` should be positive: nginx's secure_link "
                "refuses links that never expire"
            )
        return int(lifetime)

    def _check_not_private(self, url):
        """securelinkd answered url unsigned: ImproperlyConfigured when the
        prefix settings call it private."""
        if self._app_says_private(url):
            raise ImproperlyConfigured(
                f"{url} is private by SECURE_LINK_PRIVATE_PREFIXES/SECURE_LINK_PUBLIC_PREFIXES, "
                "but securelinkd signs it as public, so nginx would serve it to anyone: "
                "set private_prefixes/public_prefixes (and media_url) in securelinkd.conf "
                "to match the settings"
            )

    def _sign(self, key, url, ttl):
        # Both settings given: ImproperlyConfigured, as before. Neither:
        # securelinkd alone decides, and there is nothing to check.
        private, public = self._prefixes()
        check = self._check_answer if private or public else None
        return self.client._sign_keyed(key, url, ttl, check=check)

    def _check_answer(self, url, signed):
        # Only an unsigned answer can contradict the settings.
        if "?" not in signed:
            self._check_not_private(url)


def set_grant_cookie(response, dir_name, ttl=None, ip=None, storage=None):
    """Sets the grant cookie for the directory dir_name (relative to
    MEDIA_URL) on response, as securelinkd made it; returns the daemon's
    Set-Cookie value, or None for a public directory (no cookie needed,
    nothing set). See the module documentation."""
    if storage is None:
        from django.core.files.storage import default_storage
        storage = default_storage
    if not isinstance(storage, SecureLinkStorage):
        # default_storage is a lazy object: its class is the wrapped one's.
        wrapped = getattr(storage, "_wrapped", None)
        if not isinstance(wrapped, SecureLinkStorage):
            raise ImproperlyConfigured(
                f"set_grant_cookie() needs a SecureLinkStorage, not {type(wrapped or storage).__name__}: "
                + _storage_fix() + ", or pass storage=")
        storage = wrapped
    value = storage._grant(dir_name, "cookie", ttl, ip)
    if not value.startswith(GRANT_COOKIE + "="):
        return None
    name, cookie, attrs = _parse_set_cookie(value)
    # The daemon's Expires string as it is: Django writes a str verbatim,
    # so the header carries the same date nginx checks against.
    response.set_cookie(name, cookie, path=attrs.get("path", "/"), expires=attrs.get("expires"),
                        secure="secure" in attrs, httponly=True,
                        samesite=attrs.get("samesite", "Lax"))
    return value


def _parse_set_cookie(value):
    """"n=v; Path=/x/; Expires=...; HttpOnly" -> (n, v, {"path": "/x/",
    "expires": "...", "httponly": True}): attribute names lowercased."""
    first, *parts = value.split(";")
    name, _, cookie = first.strip().partition("=")
    attrs = {}
    for part in parts:
        k, eq, v = part.strip().partition("=")
        attrs[k.lower()] = v if eq else True
    return name, cookie, attrs


_PATH = "securelink.django.SecureLinkStorage"


def _default_storage_backend():
    """The dotted path of the default storage class, as this Django reads
    the settings (STORAGES from 4.2, DEFAULT_FILE_STORAGE before)."""
    if django.VERSION >= (4, 2):
        from django.core.files.storage import storages
        return storages.backends["default"]["BACKEND"]
    return settings.DEFAULT_FILE_STORAGE


def _storage_fix():
    """How to make SecureLinkStorage the default on this Django."""
    if django.VERSION < (4, 2):
        fix = f'set DEFAULT_FILE_STORAGE = "{_PATH}" in the settings'
        if getattr(settings, "STORAGES", None):
            fix += f" (Django {django.get_version()} ignores STORAGES, new in Django 4.2)"
        return fix
    fix = f'set STORAGES["default"] = {{"BACKEND": "{_PATH}"}} in the settings'
    if django.VERSION >= (5, 1) and getattr(settings, "DEFAULT_FILE_STORAGE", None):
        fix += f" (Django {django.get_version()} ignores DEFAULT_FILE_STORAGE)"
    return fix


@checks.register(checks.Tags.compatibility)
def check_default_storage(app_configs=None, **kwargs):
    """securelink.E001: securelink is configured but the default storage
    does not sign."""
    wanted = django_apps.is_installed("securelink.django") or any(
        name.startswith(("SECURE_LINK_", "SECURELINK_")) for name in dir(settings))
    if not wanted:
        return []
    try:
        backend = _default_storage_backend()
        cls = import_string(backend)
    except Exception as e:  # any failure to load it is this check's finding
        return [checks.Error(f"the default file storage cannot be loaded: {e}",
                             hint=_storage_fix(), id="securelink.E001")]
    if isinstance(cls, type) and issubclass(cls, SecureLinkStorage):
        return []
    return [checks.Error(
        f"the default file storage is {backend}, not {_PATH}: url() hands out unsigned "
        "links, which nginx refuses (403) for private files",
        hint=_storage_fix(), id="securelink.E001")]
