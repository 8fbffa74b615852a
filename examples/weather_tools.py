"""The seed lesson's weather -> outfit tools, as a --tools module for the examples."""

from typing_extensions import TypedDict

from tooldag import tool


class Weather(TypedDict):
    location: str
    temp: float
    condition: str


class Outfit(TypedDict):
    outfit: str


@tool(side_effects=False, category="data")
def get_weather(location: str) -> Weather:
    """Current weather for a place (canned data for the example).

    Args:
        location: City name, e.g. "London".
    """
    return {"location": location, "temp": 18, "condition": "rainy"}


@tool(side_effects=False, category="computation")
def recommend_outfit(temperature: float, condition: str) -> Outfit:
    """Recommend an outfit for the weather.

    Args:
        temperature: Temperature in degrees Celsius.
        condition: Weather condition, e.g. "rainy".
    """
    if condition == "rainy":
        return {"outfit": "Raincoat, umbrella, boots"}
    if temperature < 15:
        return {"outfit": "Jacket, long pants"}
    return {"outfit": "T-shirt, shorts"}


@tool(side_effects=True, category="communication")
def send_alert(message: str, severity: str = "low") -> dict[str, bool]:
    """Send an alert to the on-call channel (prints it in this example).

    Args:
        message: What to say.
        severity: low, medium or high.
    """
    print(f"[{severity}] {message}")
    return {"sent": True}
