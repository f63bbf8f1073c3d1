"""Filters for the desk's pages: a timeline event as a sentence, a time in the desk's format."""

from django import template

from incidents.sla_text import local_time
from incidents.timeline_text import sentence

register = template.Library()


@register.filter
def timeline_sentence(event):
    return sentence(event)


@register.filter
def desk_time(instant):
    return local_time(instant) if instant else "—"
