"""What a model call costs, for the report and for ``--max-cost``.

Prices move, and any OpenAI-compatible server may be behind the base URL, so the table is a
convenience for common OpenAI models (USD per million tokens, input/output) and
``REVIEW_AGENT_PRICE="IN,OUT"`` states the price of whatever model is used. An unknown model has
no cost (None): the report says so, and a budget cannot be enforced for it.
"""

from __future__ import annotations

from review_agent.state.schemas import Usage

PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
}


def parse_price(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise ValueError(
            f"REVIEW_AGENT_PRICE must be 'INPUT,OUTPUT' USD per million tokens, not {text!r}"
        ) from exc
    return a, b


def price_for(model: str, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    if override is not None:
        return override
    name = model.split(":", 1)[-1]
    return PRICES_PER_MILLION.get(name)


def cost_of(usage: Usage, price: tuple[float, float] | None) -> float | None:
    if price is None:
        return None
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000
