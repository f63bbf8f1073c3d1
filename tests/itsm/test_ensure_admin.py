"""``manage.py ensure_admin``: the first superuser, with a password Django's validators accept."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("admin", "This password is too short. It must contain at least 8 characters."),
        ("password", "This password is too common."),
        ("83920174", "This password is entirely numeric."),
        ("admin1234", "The password is too similar to the username."),
    ],
)
def test_a_weak_admin_password_is_refused_with_the_validators_messages(
    password, message, monkeypatch
):
    monkeypatch.setenv("ITSM_ADMIN_PASSWORD", password)
    with pytest.raises(CommandError) as raised:
        call_command("ensure_admin", verbosity=0)
    assert "ITSM_ADMIN_PASSWORD" in str(raised.value)
    assert message in str(raised.value)
    assert not User.objects.exists()


def test_a_strong_admin_password_is_taken(monkeypatch):
    monkeypatch.setenv("ITSM_ADMIN_PASSWORD", "tall-green-lantern-83")
    call_command("ensure_admin", verbosity=0)
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("tall-green-lantern-83")


def test_without_a_password_one_is_generated_and_printed_once(monkeypatch, capsys):
    monkeypatch.delenv("ITSM_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin", verbosity=0)
    out = capsys.readouterr().out
    password = out.split("with password: ", 1)[1].split()[0]
    assert User.objects.get(username="admin").check_password(password)
