"""The project's own rows: API tokens (the credential of an ``Actor`` of kind token)."""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

TOKEN_PREFIX = "itsm"


class TokenScope(models.TextChoices):
    READ = "read", _("read")
    WRITE = "write", _("write")
    ADMIN = "admin", _("admin")
    INTEGRATION = "integration", _("integration")


def _digest(secret):
    # Tokens carry 256 random bits: a fast hash is enough (no dictionary to guess from), and
    # it keeps the check cheap on every request. Only the digest is stored.
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_scopes(value):
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Choose at least one scope."))
    unknown = sorted(set(map(str, value)) - set(TokenScope.values))
    if unknown:
        raise ValidationError(
            _("Unknown scope(s): %(scopes)s. Choose from %(choices)s.")
            % {"scopes": ", ".join(unknown), "choices": ", ".join(TokenScope.values)}
        )


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, now=None):
        """Tokens that authenticate: not revoked and not expired."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A credential for the REST API and the alert integrations. The secret is shown once, when
    the token is issued; only its SHA-256 digest is kept, with a short public ``key`` that
    names the token in lists and logs."""

    name = models.CharField(_("name"), max_length=100)
    key = models.CharField(_("key"), max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(_("scopes"), default=list, validators=[validate_scopes])
    organization = models.ForeignKey(
        "services.Organization",
        verbose_name=_("organisation"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text=_("Bound to a customer organisation, the token sees only its records."),
    )
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self):
        return f"{self.name} ({self.key})"

    @property
    def is_usable(self):
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def new_secret(self):
        """Give the token a fresh key and secret; returns the text to hand over (once)."""
        self.key = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        self.digest = _digest(secret)
        return f"{TOKEN_PREFIX}_{self.key}_{secret}"

    @classmethod
    def find(cls, text):
        """The usable token ``text`` is the secret of, else None (in constant time per key)."""
        parts = (text or "").split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
            return None
        # On every API request: one lookup on the unique key, no join, no ORDER BY; whether the
        # token is still usable is checked here on the row (revocation still takes effect on
        # the very next request: nothing is cached).
        found = list(cls.objects.filter(key=parts[1]).order_by()[:1])
        token = found[0] if found else None
        if token is None or not hmac.compare_digest(token.digest, _digest(parts[2])):
            return None
        return token if token.is_usable else None


class IdempotencyRecord(models.Model):
    """The first answer to a POST made with an ``Idempotency-Key``, kept so a retry gets it back
    instead of running the action again (``itsm/idempotency.py``). Keyed by the credential (a
    token or a user) and the key: another caller's key never matches."""

    credential = models.CharField(max_length=40)
    key = models.CharField(max_length=255)
    # SHA-256 of the method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    headers = models.JSONField(default=dict)
    body = models.BinaryField()
    created_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["credential", "key"], name="idempotency_key_per_caller")
        ]
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")

    def __str__(self):
        return f"{self.credential} {self.key}"
