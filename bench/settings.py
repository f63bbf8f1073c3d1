"""The product's settings, plus (with ``BENCH_COUNT_QUERIES=1``) a middleware that reports each
request's SQL query count and server time in response headers. Used only by the benchmarks'
gunicorn (C6); nothing in the product imports it."""

from itsm.settings import *  # noqa: F403
from itsm.settings import MIDDLEWARE, env

if env.bool("BENCH_COUNT_QUERIES", default=False):
    # Outermost, so the session and user lookups and the template rendering are counted too.
    MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *MIDDLEWARE]
