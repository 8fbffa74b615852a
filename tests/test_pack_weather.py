"""The weather pack against respx-mocked Open-Meteo geocoding and forecast APIs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from tooldag.packs.weather import FORECAST_URL, GEOCODING_URL

from packs_fixtures import pack_registry
from tooldag.errors import PermanentToolError, ToolArgumentError, TransientToolError

registry = pack_registry("weather")


def place(
    name: str, lat: float, lon: float, country: str, code: str, admin1: str
) -> dict[str, Any]:
    return {
        "id": abs(hash(name)) % 10**7,
        "name": name,
        "latitude": lat,
        "longitude": lon,
        "elevation": 42.0,
        "feature_code": "PPLA",
        "country_code": code,
        "timezone": "Europe/Paris",
        "population": 100000,
        "country": country,
        "admin1": admin1,
    }


PARIS = place("Paris", 48.85341, 2.3488, "France", "FR", "Île-de-France")
PARIS_TX = place("Paris", 33.66094, -95.55551, "United States", "US", "Texas")

FORECAST: dict[str, Any] = {
    "latitude": 48.86,
    "longitude": 2.3399997,
    "generationtime_ms": 0.0749826431274414,
    "utc_offset_seconds": 3600,
    "timezone": "Europe/Paris",
    "timezone_abbreviation": "GMT+1",
    "elevation": 43.0,
    "current_units": {
        "time": "iso8601",
        "interval": "seconds",
        "temperature_2m": "°C",
        "apparent_temperature": "°C",
        "relative_humidity_2m": "%",
        "weather_code": "wmo code",
        "wind_speed_10m": "km/h",
        "wind_direction_10m": "°",
        "is_day": "",
    },
    "current": {
        "time": "2024-11-25T21:45",
        "interval": 900,
        "temperature_2m": 8.4,
        "apparent_temperature": 5.1,
        "relative_humidity_2m": 81,
        "weather_code": 61,
        "wind_speed_10m": 14.8,
        "wind_direction_10m": 226,
        "is_day": 0,
    },
    "daily_units": {"time": "iso8601", "temperature_2m_max": "°C"},
    "daily": {
        "time": ["2024-11-25"],
        "temperature_2m_max": [11.2],
        "temperature_2m_min": [6.1],
        "precipitation_probability_max": [78],
    },
}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


async def test_get_weather_geocodes_then_reports_current_conditions(
    router: respx.MockRouter,
) -> None:
    geo = router.get(GEOCODING_URL).respond(
        200, json={"results": [PARIS, PARIS_TX], "generationtime_ms": 0.6}
    )
    forecast = router.get(FORECAST_URL).respond(200, json=FORECAST)
    out = await registry.aexecute("get_weather", location="Paris")
    assert out == {
        "location": "Paris, Île-de-France, France",
        "latitude": 48.86,
        "longitude": 2.3399997,
        "timezone": "Europe/Paris",
        "observed_at": "2024-11-25T21:45",
        "temp": 8.4,
        "feels_like": 5.1,
        "humidity": 81.0,
        "condition": "slight rain",
        "weather_code": 61,
        "wind_speed": 14.8,
        "wind_direction": "SW",
        "is_day": False,
        "today_max": 11.2,
        "today_min": 6.1,
        "precipitation_probability": 78.0,
    }
    assert geo.calls.last.request.url.params["name"] == "Paris"
    params = forecast.calls.last.request.url.params
    assert (params["latitude"], params["longitude"]) == ("48.85341", "2.3488")
    assert params["timezone"] == "auto" and "temperature_2m" in params["current"]


async def test_a_qualifier_after_the_comma_picks_the_right_place(
    router: respx.MockRouter,
) -> None:
    geo = router.get(GEOCODING_URL).respond(200, json={"results": [PARIS, PARIS_TX]})
    forecast = router.get(FORECAST_URL).respond(200, json=FORECAST)
    out = await registry.aexecute("get_weather", location="Paris, Texas")
    assert out["location"] == "Paris, Texas, United States"
    assert geo.calls.last.request.url.params["name"] == "Paris"
    assert forecast.calls.last.request.url.params["latitude"] == "33.66094"


async def test_coordinates_skip_geocoding(router: respx.MockRouter) -> None:
    geo = router.get(GEOCODING_URL).respond(200, json={})
    router.get(FORECAST_URL).respond(200, json=FORECAST)
    out = await registry.aexecute("get_weather", location="48.85, 2.35")
    assert out["location"] == "48.85,2.35" and not geo.called


async def test_an_unknown_place_is_permanent_and_says_what_to_try(
    router: respx.MockRouter,
) -> None:
    router.get(GEOCODING_URL).respond(200, json={"generationtime_ms": 0.3})
    with pytest.raises(PermanentToolError, match="no place called 'Atlantis'"):
        await registry.aexecute("get_weather", location="Atlantis")


async def test_out_of_range_coordinates_are_permanent(router: respx.MockRouter) -> None:
    with pytest.raises(PermanentToolError, match="latitude,longitude"):
        await registry.aexecute("get_weather", location="95.0, 10.0")


async def test_an_unknown_wmo_code_is_reported_as_unknown(
    router: respx.MockRouter,
) -> None:
    router.get(GEOCODING_URL).respond(200, json={"results": [PARIS]})
    odd = {**FORECAST, "current": {**FORECAST["current"], "weather_code": 42}}
    router.get(FORECAST_URL).respond(200, json=odd)
    out = await registry.aexecute("get_weather", location="Paris")
    assert out["condition"] == "unknown" and out["weather_code"] == 42


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(500, text="Internal Server Error"), TransientToolError, "500"),
        (httpx.Response(503, text="<html>maintenance</html>"), TransientToolError, "503"),
        (httpx.Response(429, headers={"retry-after": "60"}), TransientToolError, "retry after 60s"),
        (httpx.Response(400, json={"error": True, "reason": "Latitude must be in range -90 to 90"}),
         PermanentToolError, "Latitude must be in range"),
        (httpx.Response(404, text="not found"), PermanentToolError, "404"),
        (httpx.Response(200, text="<html>captive portal</html>"), TransientToolError, "not JSON"),
        (httpx.Response(200, json={"latitude": 1}), TransientToolError, "no current weather"),
    ],
)  # fmt: skip
async def test_forecast_failures_and_garbage_are_classified(
    router: respx.MockRouter, response: httpx.Response, error: type[Exception], message: str
) -> None:
    router.get(GEOCODING_URL).respond(200, json={"results": [PARIS]})
    router.get(FORECAST_URL).mock(return_value=response)
    with pytest.raises(error, match=message):
        await registry.aexecute("get_weather", location="Paris")


@pytest.mark.parametrize(
    ("effect", "error"),
    [
        (httpx.ConnectTimeout("slow"), TransientToolError),
        (httpx.ConnectError("down"), TransientToolError),
        (httpx.Response(500), TransientToolError),
        (httpx.Response(200, content=b"\x00\xff garbage"), TransientToolError),
    ],
)
async def test_geocoding_failures_are_classified(
    router: respx.MockRouter, effect: Any, error: type[Exception]
) -> None:
    if isinstance(effect, Exception):
        router.get(GEOCODING_URL).mock(side_effect=effect)
    else:
        router.get(GEOCODING_URL).mock(return_value=effect)
    forecast = router.get(FORECAST_URL).respond(200, json=FORECAST)
    with pytest.raises(error, match="try again"):
        await registry.aexecute("get_weather", location="Paris")
    assert not forecast.called


def test_the_location_is_validated_by_the_schema() -> None:
    with pytest.raises(ToolArgumentError, match="location"):
        registry.execute("get_weather", location="")


def test_get_weather_is_a_typed_read_only_tool() -> None:
    t = registry.get("get_weather")
    assert t.side_effects is False and t.idempotent is True
    assert t.output_schema is not None
    props = t.output_schema["properties"]
    assert {"temp", "condition", "location", "wind_speed"} <= set(props)
    assert "°C" in props["temp"]["description"]
