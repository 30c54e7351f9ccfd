"""SensorThings API over a real uvicorn server: the frost-sta-client package, paging, options, isolation."""

from __future__ import annotations

from typing import Any

import frost_sta_client
import httpx
import pytest
import requests
from frost_sta_client.service.auth_handler import AuthHandler

from .conftest import ApiServer

# frost-sta-client calls a deprecated furl property; that is the client's business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:furl.pathstr is deprecated:DeprecationWarning")


class BearerAuth(AuthHandler):  # type: ignore[misc]
    """frost-sta-client only knows HTTP Basic; requests takes any callable auth."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def add_auth_header(self) -> Any:
        token = self.token

        def auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
            request.headers["Authorization"] = f"Bearer {token}"
            return request

        return auth


def service(server: ApiServer, who: str) -> frost_sta_client.SensorThingsService:
    return frost_sta_client.SensorThingsService(
        f"{server.url}/sta/v1.1", auth_handler=BearerAuth(server.tokens[who])
    )


def get(server: ApiServer, path: str, who: str = "viewer-a", **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[who]}"} if who else {}
    return httpx.get(f"{server.url}/sta/v1.1{path}", params=params, headers=headers, timeout=10)


def test_frost_client_lists_things_datastreams_and_filtered_observations(api_server: ApiServer) -> None:
    sta = service(api_server, "viewer-a")
    things = list(sta.things().query().list())
    assert [t.id for t in things] == ["bac-1", "compteur-a", "lampe-a1", "place-1", "place-2", "relais-a"]
    assert things[1].properties["site"] == "armoire-centre"

    # top(3) pages: the client follows @iot.nextLink to the end.
    datastreams = {d.id: d for d in sta.datastreams().query().top(3).list()}
    assert set(datastreams) == {"bac-1:distance_mm", "compteur-a:energy_kwh", "compteur-a:power_w", "lampe-a1:dim_pct",
                                "lampe-a1:power_w", "place-1:occupied", "place-2:occupied", "relais-a:relay_on"}  # fmt: skip
    assert datastreams["compteur-a:power_w"].unit_of_measurement.symbol == "W"

    observations = list(
        sta.observations().query()
        .filter("result gt 1050 and phenomenonTime lt 2025-01-15T00:09:00Z")
        .orderby("phenomenonTime", "desc").list()
    )  # fmt: skip
    assert [(o.result, o.phenomenon_time) for o in observations] == [
        (1080.0, "2025-01-15T00:08:00Z"), (1070.0, "2025-01-15T00:07:00Z"), (1060.0, "2025-01-15T00:06:00Z")]  # fmt: skip

    stream = sta.datastreams().find("compteur-a:power_w")
    assert stream.name == "power_w of compteur-a"
    latest = stream.get_observations().query().orderby("phenomenonTime", "desc").top(2).list()
    assert [o.result for o in latest.entities] == [1090.0, 1080.0] and latest.next_link is not None

    thing = sta.things().query().expand("Datastreams($expand=Observations($top=1))").top(1).list()
    first = thing.entities[0]
    assert first.id == "bac-1" and first.datastreams.entities[0].observations.entities[0].result == 450.0


def test_tenants_see_only_their_own_entities(api_server: ApiServer) -> None:
    assert [t.id for t in service(api_server, "technician-b").things().query().list()] == ["compteur-b"]
    with pytest.raises(requests.HTTPError) as caught:
        service(api_server, "technician-b").things().find("compteur-a")
    assert caught.value.response.status_code == 404
    assert get(api_server, "/Datastreams('compteur-b:power_w')/Observations").status_code == 404
    assert get(api_server, "/Observations", **{"$count": "true"}).json()["@iot.count"] == 26
    assert get(api_server, "/Observations", who="admin", **{"$count": "true"}).json()["@iot.count"] == 46
    assert {s["@iot.id"] for s in get(api_server, "/Sensors", who="technician-b").json()["value"]} == {
        "modbus-energy-meter"}  # fmt: skip
    assert get(api_server, "/Things", who="").status_code == 401


def test_paging_covers_everything_once_and_counts(api_server: ApiServer) -> None:
    seen: list[str] = []
    url: str | None = f"{api_server.url}/sta/v1.1/Observations?$top=7&$count=true&$orderby=result desc"
    headers = {"Authorization": f"Bearer {api_server.tokens['viewer-a']}"}
    while url:
        page = httpx.get(url, headers=headers, timeout=10).json()
        assert page["@iot.count"] == 26
        seen += [o["@iot.id"] for o in page["value"]]
        url = page.get("@iot.nextLink")
    assert len(seen) == len(set(seen)) == 26


def test_entity_links_navigation_expand_and_select(api_server: ApiServer) -> None:
    thing = get(
        api_server, "/Things('compteur-a')", **{"$expand": "Locations,Datastreams/Observations($top=1)"}
    ).json()
    assert thing["@iot.selfLink"].endswith("/sta/v1.1/Things('compteur-a')")
    assert thing["Datastreams@iot.navigationLink"].endswith("/Things('compteur-a')/Datastreams")
    assert thing["Locations"][0]["location"] == {"type": "Point", "coordinates": [5.1034, 47.5207]}
    streams = {d["@iot.id"]: d for d in thing["Datastreams"]}
    assert streams["compteur-a:power_w"]["Observations"][0]["result"] == 1000.0
    assert "Observations@iot.nextLink" in streams["compteur-a:power_w"]

    observation_id = streams["compteur-a:power_w"]["Observations"][0]["@iot.id"]
    observation = get(
        api_server, f"/Observations('{observation_id}')", **{"$expand": "Datastream/Thing"}
    ).json()
    assert observation["phenomenonTime"] == "2025-01-15T00:00:00Z"
    assert observation["Datastream"]["Thing"]["@iot.id"] == "compteur-a"
    assert get(api_server, "/Datastreams('compteur-a:power_w')/ObservedProperty").json()["name"] == "power_w"
    assert [t["@iot.id"] for t in get(api_server, "/Locations('parking-halle')/Things").json()["value"]] == [
        "place-1", "place-2"]  # fmt: skip
    selected = get(api_server, "/ObservedProperties", **{"$select": "id,name", "$top": "1"}).json()
    assert set(selected["value"][0]) == {"@iot.id", "name"}
    root = get(api_server, "").json()
    assert {e["name"] for e in root["value"]} == {"Things", "Locations", "Sensors", "ObservedProperties",
                                                  "Datastreams", "Observations"}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/Observations", {"$filter": "result gt"}, 400),
        ("/Observations", {"$filter": "result gt 'abc'"}, 400),
        ("/Things", {"$filter": "result gt 1"}, 400),
        ("/Things", {"$orderby": "color"}, 400),
        ("/Things", {"$top": "99999"}, 400),
        ("/Things", {"$expand": "Observations"}, 400),
        ("/Things", {"$format": "csv"}, 400),
        ("/Gadgets", {}, 404),
        ("/Things('nope')", {}, 404),
        ("/Things('compteur-a')/Gadgets", {}, 404),
        ("/Observations('compteur-a:power_w:not-a-time')", {}, 404),
    ],
)
def test_errors_are_problem_documents(
    api_server: ApiServer, path: str, params: dict[str, str], status: int
) -> None:
    response = get(api_server, path, **params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status and response.json()["detail"]
