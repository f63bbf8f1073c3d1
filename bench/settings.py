"""The product's settings, plus (with ``BENCH_COUNT_QUERIES=1``) a middleware that reports each
request's SQL query count and server time in response headers, and the bench's URLconf (the
product's URLs and the baselines' views, bench/urls.py). Used only by the benchmarks' gunicorn
(C6, B2, B5); nothing in the product imports it."""

from itsm.settings import *  # noqa: F403
from itsm.settings import MIDDLEWARE, env

ROOT_URLCONF = "bench.urls"

if env.bool("BENCH_COUNT_QUERIES", default=False):
    # Outermost, so the session and user lookups and the template rendering are counted too.
    MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *MIDDLEWARE]
