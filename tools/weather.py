"""Weather pack: current conditions anywhere, from Open-Meteo (free, no API key).

A place name is geocoded first (Open-Meteo's geocoder matches bare names, so "Paris, France" is
searched as "Paris" and the part after the comma picks among the matches); "48.85,2.35" skips
geocoding. Units are fixed (°C, km/h) so a plan can compare numbers without asking which unit.

Configuration: ``TOOLDAG_HTTP_TIMEOUT`` (seconds per request, default 15).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import httpx
from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError, TransientToolError
from tooldag.registry import RetryPolicy, tool

from ._common import USER_AGENT, fetch_json, http_timeout

__all__ = ["WMO_CODES", "WeatherReport", "get_weather"]

GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"

# WMO weather interpretation codes, as documented by Open-Meteo.
WMO_CODES: dict[int, str] = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}
_COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
_COORDS = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*$")
_CURRENT = (
    "temperature_2m,apparent_temperature,relative_humidity_2m,weather_code,"
    "wind_speed_10m,wind_direction_10m,is_day"
)
_DAILY = "temperature_2m_max,temperature_2m_min,precipitation_probability_max"


class WeatherReport(TypedDict):
    """Current weather at a place, in °C and km/h."""

    location: Annotated[
        str, Field(description='The place found, e.g. "Paris, Île-de-France, France"')
    ]
    latitude: float
    longitude: float
    timezone: str
    observed_at: Annotated[str, Field(description="Local time of the observation (ISO 8601)")]
    temp: Annotated[float, Field(description="Air temperature, °C")]
    feels_like: Annotated[float | None, Field(description="Apparent temperature, °C")]
    humidity: Annotated[float | None, Field(description="Relative humidity, %")]
    condition: Annotated[str, Field(description='Sky and precipitation, e.g. "slight rain"')]
    weather_code: Annotated[int, Field(description="WMO weather code")]
    wind_speed: Annotated[float | None, Field(description="Wind speed at 10 m, km/h")]
    wind_direction: Annotated[str | None, Field(description='Where the wind comes from, e.g. "SW"')]
    is_day: bool
    today_max: Annotated[float | None, Field(description="Today's highest temperature, °C")]
    today_min: Annotated[float | None, Field(description="Today's lowest temperature, °C")]
    precipitation_probability: Annotated[
        float | None, Field(description="Today's highest chance of precipitation, %")
    ]


def _place_label(place: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("name", "admin1", "country"):
        value = place.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    return ", ".join(parts)


def _matches(place: dict[str, Any], qualifier: str) -> bool:
    wanted = qualifier.casefold()
    return any(
        isinstance(place.get(key), str) and str(place[key]).casefold() == wanted
        for key in ("country", "country_code", "admin1", "admin2")
    )


async def _geocode(client: httpx.AsyncClient, location: str) -> tuple[str, float, float]:
    name, _, qualifier = (part.strip() for part in location.partition(","))
    if not name:
        raise PermanentToolError(f"{location!r} names no place; give a city, e.g. 'Paris'")
    data = await fetch_json(
        client,
        GEOCODING_URL,
        {"name": name, "count": 10, "language": "en", "format": "json"},
        "Open-Meteo geocoding",
    )
    if not isinstance(data, dict):
        raise TransientToolError("Open-Meteo geocoding sent an unexpected answer; try again")
    places = [
        p
        for p in data.get("results") or []
        if isinstance(p, dict) and isinstance(p.get("latitude"), int | float)
    ]
    if qualifier:
        places = [p for p in places if _matches(p, qualifier)] or places
    if not places:
        raise PermanentToolError(
            f"no place called {name!r} was found; check the spelling or give a larger city nearby"
        )
    best = places[0]
    return _place_label(best), float(best["latitude"]), float(best["longitude"])


def _number(block: dict[str, Any], key: str) -> float | None:
    value = block.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@tool(
    category="data",
    side_effects=False,
    idempotent=True,
    timeout=60.0,
    retry=RetryPolicy(attempts=3, initial_backoff=1.0, max_backoff=10.0),
    reads_private=False,
    egress=["location"],  # sent to Open-Meteo's geocoder
    untrusted_output=True,  # place names come from the geocoder's community-edited data
    metadata={"destination": []},  # always Open-Meteo
)
async def get_weather(
    location: Annotated[str, Field(min_length=1, max_length=200)],
) -> WeatherReport:
    """Current weather for a place: temperature (°C), condition, wind (km/h) and today's range.

    Args:
        location: A city, optionally with its country or region ("Paris", "Paris, France",
            "Springfield, Illinois"), or "latitude,longitude".
    """
    timeout = http_timeout()
    async with httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT}) as client:
        coords = _COORDS.match(location)
        if coords:
            lat, lon = float(coords.group(1)), float(coords.group(2))
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise PermanentToolError(f"{location!r} is not a valid latitude,longitude pair")
            label = f"{lat:g},{lon:g}"
        else:
            label, lat, lon = await _geocode(client, location)
        data = await fetch_json(
            client,
            FORECAST_URL,
            {
                "latitude": lat,
                "longitude": lon,
                "current": _CURRENT,
                "daily": _DAILY,
                "forecast_days": 1,
                "timezone": "auto",
                "wind_speed_unit": "kmh",
                "temperature_unit": "celsius",
            },
            "Open-Meteo forecast",
        )
    current = data.get("current") if isinstance(data, dict) else None
    temp = _number(current, "temperature_2m") if isinstance(current, dict) else None
    if not isinstance(current, dict) or temp is None:
        raise TransientToolError(f"Open-Meteo sent no current weather for {label}; try again later")
    daily = data.get("daily") if isinstance(data.get("daily"), dict) else {}
    code_value = _number(current, "weather_code")
    code = int(code_value) if code_value is not None else -1
    direction = _number(current, "wind_direction_10m")
    return WeatherReport(
        location=label,
        latitude=float(data.get("latitude", lat)),
        longitude=float(data.get("longitude", lon)),
        timezone=str(data.get("timezone", "GMT")),
        observed_at=str(current.get("time", "")),
        temp=temp,
        feels_like=_number(current, "apparent_temperature"),
        humidity=_number(current, "relative_humidity_2m"),
        condition=WMO_CODES.get(code, "unknown"),
        weather_code=code,
        wind_speed=_number(current, "wind_speed_10m"),
        wind_direction=None if direction is None else _COMPASS[round(direction / 45) % 8],
        is_day=_number(current, "is_day") != 0,
        today_max=_number(daily, "temperature_2m_max"),
        today_min=_number(daily, "temperature_2m_min"),
        precipitation_probability=_number(daily, "precipitation_probability_max"),
    )


TOOLS = [get_weather]
