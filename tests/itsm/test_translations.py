"""Every string a person reads has its Romanian translation, and the compiled catalogues are
the ones the .po files say.

The catalogues are extracted afresh from a copy of the tree (``makemessages``, as
``make messages`` does): a new string without a translation fails here, not in front of a
Romanian customer. Needs GNU gettext, which CI's machine has."""

import gettext
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ["itsm", "services", "incidents", "oncall", "problems", "notifications", "statuspage"]
CATALOGUES = [Path("locale/ro/LC_MESSAGES"), Path("notifications/locale/ro/LC_MESSAGES")]

pytestmark = pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs GNU gettext")


def _statistics(po):
    """(translated, fuzzy, untranslated) as msgfmt counts them."""
    out = subprocess.run(
        ["msgfmt", "--statistics", "-o", "/dev/null", str(po)],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    counts = {"translated": 0, "fuzzy": 0, "untranslated": 0}
    for part in out.replace(".", "").split(","):
        words = part.split()
        if len(words) >= 2 and words[0].isdigit():
            counts[words[1]] = int(words[0])
    return counts["translated"], counts["fuzzy"], counts["untranslated"]


@pytest.mark.slow
def test_every_string_has_its_romanian_translation(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ROOT / "manage.py", tree)
    shutil.copytree(ROOT / "locale", tree / "locale")
    for app in APPS:
        shutil.copytree(ROOT / app, tree / app, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "ro", "-v", "0"],
        cwd=tree,
        check=True,
        capture_output=True,
    )
    missing = {}
    for catalogue in CATALOGUES:
        _translated, fuzzy, untranslated = _statistics(tree / catalogue / "django.po")
        if fuzzy or untranslated:
            missing[str(catalogue)] = {"fuzzy": fuzzy, "untranslated": untranslated}
    assert not missing, f"strings without a Romanian translation (run `make messages`): {missing}"


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=str)
def test_compiled_catalogue_matches_its_po_file(catalogue, tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(ROOT / catalogue / "django.po")], check=True)
    with open(compiled, "rb") as fresh, open(ROOT / catalogue / "django.mo", "rb") as committed:
        assert gettext.GNUTranslations(committed)._catalog == (
            gettext.GNUTranslations(fresh)._catalog
        ), "the committed .mo is not compiled from the .po (run `make messages`)"
