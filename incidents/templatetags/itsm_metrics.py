"""Filters of the metrics dashboard: a duration, a share, an amount of money."""

from django import template

from incidents import admin_metrics
from incidents.cost import format_cost

register = template.Library()


@register.filter
def duration(seconds):
    return admin_metrics.duration(seconds)


@register.filter
def percent(share):
    return admin_metrics.percent(share)


@register.filter
def cost(amount):
    return format_cost(amount)
