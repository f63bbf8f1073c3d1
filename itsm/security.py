"""Cross-app security plumbing: what Django's error reports may show."""

import re

from django.views.debug import SafeExceptionReporterFilter

# ``scheme://user:password@host``: the password part of a URL (DATABASE_URL, REDIS_URL,
# CELERY_BROKER_URL, EMAIL_URL, a cache LOCATION, ...).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]+(?=@)", re.I)
# ``?password=...`` in a URL's query, as Redis and some SQL drivers accept.
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)[^&#\s]+", re.I)


class CredentialsFilter(SafeExceptionReporterFilter):
    """Django's filter hides settings by name (``SECRET``, ``PASS``, ...), which misses URLs that
    carry a password: ``DATABASE_URL``, ``REDIS_URL`` and ``CELERY_BROKER_URL`` appeared in clear
    on the DEBUG page, in the settings and again in the request's environment (``runserver``
    copies ``os.environ`` into it). This one also masks the password inside any URL, wherever
    it is nested, and applies the same rules to each traceback frame's variables, which the
    DEBUG page shows unfiltered. The host and database stay visible: they are what one debugs.
    """

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        # ``type``, not ``isinstance``: a lazy object (django-axes has one among the settings)
        # claims to be a str, and the error page must never fail while it reports an error.
        if type(cleansed) is str:
            return mask_url_credentials(cleansed, self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, self.cleanse_setting(name, value))
            if type(value) is str or isinstance(value, dict | list | tuple)
            else (name, value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def mask_url_credentials(text, substitute="********************"):
    """``text`` with the password of every URL in it replaced by ``substitute``."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + substitute, text)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + substitute, text)
