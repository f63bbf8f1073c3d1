"""Rows inserted from one array per column (``itsm.arrays``), the SLA sweep's write path on
PostgreSQL: the rows must be the ones ``Model.objects.create`` would have written."""

import datetime as dt

import pytest
from django.db import DataError, IntegrityError, transaction
from django.forms.models import model_to_dict

from incidents.models import EventKind, IncidentEvent, SlaSignal
from itsm import arrays
from itsm.actors import Actor
from tests.factories import ServiceFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def incident(db):
    from incidents import workflow

    return workflow.create_incident(
        actor=Actor.system(), title="x", impact=1, urgency=1, services=[ServiceFactory()], now=T0
    )


def _without(row, *names):
    return {k: v for k, v in row.items() if k not in names}


def test_the_rows_have_every_default_the_orm_gives(on_postgres, incident):
    value = {"target": "response", "due_at": T0.isoformat(), "note": 'ă & " \\ {} ,', "n": None}
    reference = IncidentEvent.objects.create(
        incident=incident, at=T0, kind=EventKind.SLA_WARNING, new_value=value
    )
    arrays.insert(
        IncidentEvent,
        {"incident": [incident.pk], "kind": [EventKind.SLA_WARNING], "new_value": [value]},
        values={"at": T0},
    )
    ours = IncidentEvent.objects.filter(incident=incident, kind=EventKind.SLA_WARNING)
    first, second = (model_to_dict(e) for e in ours.order_by("id"))
    assert second["id"] > first["id"] == reference.pk
    assert _without(second, "id") == _without(first, "id")
    # None in a JSON column is SQL NULL, as the ORM stores it.
    IncidentEvent.objects.create(incident=incident, at=T0, kind=EventKind.HELD, new_value=None)
    arrays.insert(
        IncidentEvent,
        {"incident": [incident.pk], "kind": [EventKind.HELD], "new_value": [None]},
        values={"at": T0},
    )
    assert list(
        IncidentEvent.objects.filter(
            incident=incident, kind=EventKind.HELD, new_value__isnull=True
        ).values_list("new_value", flat=True)
    ) == [None, None]


def test_rows_keep_their_order_and_returning_gives_their_ids(on_postgres, incident):
    thresholds = [1000, 750, 900]
    rows = arrays.insert(
        SlaSignal,
        {
            "incident": [incident.pk] * 3,
            "target": ["response"] * 3,
            "threshold": thresholds,
            "due_at": [T0, T0, T0],
        },
        returning=("id", "threshold"),
    )
    assert [threshold for _id, threshold in rows] == thresholds
    assert [i for i, _threshold in rows] == sorted(i for i, _threshold in rows)
    stored = SlaSignal.objects.filter(incident=incident).order_by("id")
    assert list(stored.values_list("threshold", flat=True)) == thresholds
    assert all(s.raised_at is not None for s in stored)  # the field's default, timezone.now


def test_a_conflict_fails_the_statement_unless_told_to_skip_it(on_postgres, incident):
    columns = {
        "incident": [incident.pk, incident.pk],
        "target": ["response", "response"],
        "threshold": [750, 750],
        "due_at": [T0, T0],
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        arrays.insert(SlaSignal, columns)
    assert not SlaSignal.objects.filter(incident=incident).exists()
    arrays.insert(SlaSignal, columns, on_conflict_do_nothing=True)
    assert SlaSignal.objects.filter(incident=incident).count() == 1


def test_bad_columns_are_refused_before_anything_is_written(on_postgres, incident):
    with pytest.raises(ValueError, match="different lengths"):
        arrays.insert(SlaSignal, {"incident": [incident.pk], "threshold": [750, 900]})
    with pytest.raises(ValueError, match="no field"):
        arrays.insert(SlaSignal, {"incident": [incident.pk], "colour": ["red"]})
    # Too long for the column: refused as the ORM's INSERT would be, not cut short.
    with pytest.raises(DataError), transaction.atomic():
        arrays.insert(
            SlaSignal,
            {"incident": [incident.pk], "target": ["r" * 17], "threshold": [750], "due_at": [T0]},
        )
    assert not SlaSignal.objects.filter(incident=incident).exists()
