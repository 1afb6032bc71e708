import json
import threading
import urllib.error
import urllib.request

import pytest

from drone_service.app import FLEET, GREETING, route, serve


def test_root_names_the_service_and_its_greeting():
    status, body = route("/")
    assert status == 200 and body["service"] == "drone-service" and body["message"] == GREETING


def test_drones_filter_by_status():
    assert route("/drones")[1]["drones"] == FLEET
    assert {d["id"] for d in route("/drones?status=flying")[1]["drones"]} == {"dr-01", "dr-03"}


def test_unknown_status_and_path_are_client_errors():
    assert route("/drones?status=sinking")[0] == 400
    assert route("/nope")[0] == 404


@pytest.fixture
def server():
    srv = serve("127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_serves_json_over_http(server):
    with urllib.request.urlopen(f"{server}/healthz") as resp:
        assert resp.headers["Content-Type"] == "application/json"
        assert json.load(resp) == {"status": "ok"}
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server}/nope")
    assert err.value.code == 404
