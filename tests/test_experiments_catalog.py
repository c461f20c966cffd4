"""The item catalog through the API: upsert, id-only candidates, availability, versions."""
import pytest

from tests.conftest import table_counts

ENGINES = ("sqlite", "postgresql")  # each test that uses the database runs on both engines


ITEMS = [{"id": f"sku-{i}", "features": {"category": f"c{i % 3}", "price": 10.0 + i}} for i in range(8)]


@pytest.fixture
def catalog_shop(shop):
    response = shop.client.put("/v1/catalog/items", json={"items": ITEMS})
    assert response.status_code == 200 and response.get_json() == {"version": 1, "upserted": 8}
    shop.create("home", slots=3)
    return shop


def logged_candidates(app, event_id):
    store = app.extensions["silent"]["store"]
    return store.candidates(store.get_decision(event_id)["candidate_set"])


def test_id_only_candidates_take_catalog_features(catalog_shop, app):
    answer = catalog_shop.slate("home", candidates=[{"id": "sku-1"}, {"id": "sku-2"}, {"id": "sku-3"}])
    logged = logged_candidates(app, answer["event_id"])
    assert logged[0] == {"id": "sku-1", "features": {"category": "c1", "price": 11.0}}


def test_request_features_override_and_unknown_ids_are_featureless(catalog_shop, app):
    answer = catalog_shop.slate("home", candidates=[{"id": "sku-1", "features": {"price": 1.0}},
                                                    {"id": "new-1"}, {"id": "sku-2"}])
    logged = {c["id"]: c["features"] for c in logged_candidates(app, answer["event_id"])}
    assert logged == {"sku-1": {"price": 1.0}, "new-1": {}, "sku-2": {"category": "c2", "price": 12.0}}


def test_unavailable_items_are_never_shown(catalog_shop):
    catalog_shop.client.put("/v1/catalog/items", json={"items": [{**ITEMS[0], "available": False},
                                                                 {**ITEMS[1], "available": False}]})
    for i in range(60):
        shown = {s["id"] for s in catalog_shop.slate("home", unit=f"u{i}",
                                                     candidates=[{"id": item["id"]} for item in ITEMS])["slate"]}
        assert not shown & {"sku-0", "sku-1"}
        assert not {s["id"] for s in catalog_shop.slate("home", unit=f"w{i}")["slate"]} & {"sku-0", "sku-1"}


def test_too_few_candidates_for_the_slots_names_the_real_cause(catalog_shop):
    catalog_shop.client.put("/v1/catalog/items", json={"items": [{**ITEMS[1], "available": False}]})
    slate = lambda **body: catalog_shop.client.post("/v1/experiments/home/slate", json=body)  # noqa: E731
    unavailable = slate(candidates=[{"id": "sku-0"}, {"id": "sku-1"}], slots=2).get_json()["error"]
    assert unavailable["field"] == "slots" and unavailable["message"] == (
        "slots: must be at most the number of candidates left to show (1 of 2 sent: 1 unavailable in the catalog)")
    both = slate(candidates=[{"id": "sku-0"}, {"id": "sku-1"}, {"id": "sku-2"}], exclude=["sku-2"], slots=2)
    assert both.get_json()["error"]["message"].endswith("(1 of 3 sent: 1 unavailable in the catalog, 1 excluded)")
    catalog = slate(exclude=[item["id"] for item in ITEMS[2:]]).get_json()["error"]
    assert catalog["message"].endswith("(1 of 7 available catalog items: 6 excluded)")
    none_left = slate(candidates=[{"id": "sku-1"}]).get_json()["error"]
    assert none_left["field"] == "candidates" and "(0 of 1 sent: 1 unavailable in the catalog)" in none_left["message"]


def test_omitted_candidates_mean_the_available_catalog(catalog_shop, app):
    answer = catalog_shop.slate("home")
    assert len(logged_candidates(app, answer["event_id"])) == 8


def test_versions_move_and_replay_keeps_the_old_features(catalog_shop, app):
    first = catalog_shop.slate("home", candidates=[{"id": "sku-1"}, {"id": "sku-2"}, {"id": "sku-3"}])
    changed = catalog_shop.client.put("/v1/catalog/items", json=[{"id": "sku-1", "features": {"price": 99.0}}])
    assert changed.get_json()["version"] == 2
    assert catalog_shop.client.get("/v1/catalog/items/sku-1").get_json() == {
        "id": "sku-1", "features": {"price": 99.0}, "available": True, "version": 2}
    second = catalog_shop.slate("home", candidates=[{"id": "sku-1"}, {"id": "sku-2"}, {"id": "sku-3"}])
    assert logged_candidates(app, first["event_id"])[0]["features"]["price"] == 11.0
    assert logged_candidates(app, second["event_id"])[0]["features"]["price"] == 99.0
    deleted = catalog_shop.client.delete("/v1/catalog/items/sku-1")
    assert deleted.get_json() == {"version": 3, "deleted": "sku-1"}
    assert catalog_shop.client.delete("/v1/catalog/items/sku-1").status_code == 404
    listing = catalog_shop.client.get("/v1/catalog/items?limit=3").get_json()
    assert listing["version"] == 3 and [i["id"] for i in listing["items"]] == ["sku-0", "sku-2", "sku-3"]
    assert listing["next"] == "sku-3"


@pytest.mark.parametrize("body, field", [
    ({"items": []}, "items"),
    ({"items": [{"features": {}}]}, "items[0].id"),
    ({"items": [{"id": "a"}, {"id": "a"}]}, "items[1].id"),
    ({"items": [{"id": "a", "available": "yes"}]}, "items[0].available"),
    ({"items": [{"id": "a", "features": {"p": None}}]}, "items[0].features.p"),
    ({"items": [{"id": "a", "colour": "red"}]}, "items[0].colour"),
    ([{"id": "a", "features": []}], "[0].features"),
])
def test_bad_catalog_bodies_name_the_field_and_write_nothing(client, db_path, body, field):
    before = table_counts(db_path)
    response = client.put("/v1/catalog/items", json=body)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    assert table_counts(db_path) == before


def test_bad_list_limit(client):
    assert client.get("/v1/catalog/items?limit=0").get_json()["error"]["field"] == "limit"
