from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.factories import Api, make_api


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    """The API on both back-ends, with a coordinator and operators of four cities."""
    api, client = make_api(database_url)
    with client:
        api.user("coordinator", "coordinator")
        api.user("observer", "observer")
        api.user("duty", "duty_officer", "athens")
        for city in ("athens", "sofia", "belgrade", "zagreb", "skopje"):
            api.user(city, "city_operator", city)
        yield api
