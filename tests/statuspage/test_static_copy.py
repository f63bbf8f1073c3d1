"""The static copy of the status page works when everything else is down: Debian's nginx serves
the published folder after the database is gone and no Django process is left.

The publisher runs in a subprocess (``manage.py shell -c``) against a throwaway SQLite
database, so the test can delete that database afterwards: nothing but nginx and the files is
left when the page is read. Needs ``/usr/sbin/nginx`` (``apt-get install nginx``; ``.ci/run``
installs it). The nginx configuration is the README's snippet (``nginx_config``).
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.live import ROOT, free_port

pytestmark = pytest.mark.slow

NGINX = Path("/usr/sbin/nginx")

# What the folder holds, by extension, and the type it is served with.
TYPES = """\
        text/html                             html;
        text/css                              css;
        application/json                      json;
        application/atom+xml                  atom;
        application/rss+xml                   rss;
        text/calendar                         ics;
        image/svg+xml                         svg;
"""


def nginx_config(*, root, port, run_dir):
    """The server of the README snippet, wrapped in what a standalone nginx needs (no daemon,
    pid, logs and temporary files under ``run_dir``)."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # pytest's tmp folders are 0700
    return f"""{user}daemon off;
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {run_dir}/access.log;
    client_body_temp_path {run_dir}/client_body;
    proxy_temp_path {run_dir}/proxy;
    fastcgi_temp_path {run_dir}/fastcgi;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index index.html;
        charset utf-8;
        charset_types text/html text/css application/json application/atom+xml
                      application/rss+xml text/calendar image/svg+xml;
        types {{
{TYPES}        }}
        default_type application/octet-stream;
        location / {{
            # /, /ro/, /incidents/4/ are folders with an index.html; feeds, JSON, badges files.
            try_files $uri $uri/index.html =404;
            add_header Cache-Control "public, max-age=10";
        }}
        location /api/v2/ {{
            try_files $uri =404;
            add_header Access-Control-Allow-Origin "*";
            add_header Cache-Control "public, max-age=10";
        }}
    }}
}}
"""


PUBLISHER = """
from incidents import workflow
from services.models import ServiceStatus
from statuspage.publish import publish
from tests.factories import AGENT_GROUP, ServiceFactory, UserFactory

agent = UserFactory(username="agent", groups=[AGENT_GROUP])
web = ServiceFactory(name="Website", slug="website")
ServiceFactory(name="Card payments", slug="card")
incident = workflow.create_incident(
    actor=agent, title="Website down", services={web: ServiceStatus.MAJOR_OUTAGE}
)
workflow.post_update(
    incident, actor=agent, body="We are investigating.", is_public=True,
    public_status="investigating",
)
publish(full=True)  # outside a transaction: the files are written on commit, at once
print(incident.pk)
"""


def manage(*args, env):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_for(url, process, error_log):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {error_log.read_text() if error_log.exists() else ''}")
        try:
            return get(url)
        except OSError:
            time.sleep(0.05)
    pytest.fail("nginx did not answer")


def test_nginx_serves_the_page_and_the_json_with_no_database_and_no_django(tmp_path):
    if not NGINX.exists():
        pytest.fail("/usr/sbin/nginx is missing: apt-get install -y --no-install-recommends nginx")
    folder, run_dir, database = tmp_path / "public", tmp_path / "run", tmp_path / "x.sqlite3"
    run_dir.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL"}
    }
    env |= {
        "DATABASE_URL": f"sqlite:///{database}",
        "STATUS_PAGE_DIR": str(folder),
        "ITSM_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "itsm.settings",
    }
    manage("migrate", "-v0", env=env)
    incident_id = manage("shell", "-c", PUBLISHER, env=env).stdout.split()[-1]

    # Everything but nginx is gone: the publisher has exited (no gunicorn was started), and the
    # database is deleted.
    for leftover in tmp_path.glob("x.sqlite3*"):
        leftover.unlink()
    assert not database.exists()

    port = free_port()
    config = run_dir / "nginx.conf"
    config.write_text(nginx_config(root=folder, port=port, run_dir=run_dir))
    nginx = subprocess.Popen(
        [str(NGINX), "-p", str(run_dir), "-e", str(run_dir / "error.log"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        status, headers, body = wait_for(f"{base}/", nginx, run_dir / "error.log")
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        page = body.decode()
        assert "Major outage" in page  # the banner
        assert "Website down" in page and "We are investigating." in page

        status, headers, body = get(f"{base}/api/v2/summary.json")
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        assert headers["Access-Control-Allow-Origin"] == "*"
        summary = json.loads(body)
        assert summary["status"]["indicator"] != "none"  # something is wrong, it says so
        assert {c["name"] for c in summary["components"]} == {"Website", "Card payments"}
        assert [i["name"] for i in summary["incidents"]] == ["Website down"]

        status, headers, body = get(f"{base}/ro/")
        assert status == 200
        assert 'lang="ro"' in body.decode() and "Întrerupere majoră" in body.decode()

        status, _headers, body = get(f"{base}/incidents/{incident_id}/")
        assert status == 200 and "Website down" in body.decode()
        for path, content_type in (
            ("/history.atom", "application/atom+xml"),
            ("/history.rss", "application/rss+xml"),
            ("/maintenance.ics", "text/calendar"),
            ("/badge/website.svg", "image/svg+xml"),
            ("/static/statuspage/status.css", "text/css"),
        ):
            status, headers, _body = get(base + path)
            assert (status, headers["Content-Type"].split(";")[0]) == (200, content_type), path
        assert get(f"{base}/incidents/999999/")[0] == 404
    finally:
        nginx.terminate()
        nginx.wait(10)
