"""Money as integer micro-dollars (1 USD = 1,000,000 micro-dollars); no floats in the ledger."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = ["MICROS_PER_USD", "format_usd", "parse_usd", "usd_to_micros"]

MICROS_PER_USD = 1_000_000


def usd_to_micros(amount: Decimal | float | str | int) -> int:
    """Convert US dollars to micro-dollars, rounding half up to the nearest micro-dollar.

    Args:
        amount: dollars; a float is read through its shortest repr (``0.1424`` -> 142400).

    Returns:
        Integer micro-dollars.

    Raises:
        ValueError: if ``amount`` is not a finite number.
    """
    try:
        value = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount in dollars: {amount!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount in dollars: {amount!r}")
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def parse_usd(text: str) -> int:
    """Parse a person's dollar amount (``"5"``, ``"$2.50"``, ``"0.1424"``) into micro-dollars.

    Raises:
        ValueError: if the text is not a non-negative amount.
    """
    cleaned = text.strip().removeprefix("$").replace(",", "")
    micros = usd_to_micros(cleaned)
    if micros < 0:
        raise ValueError("an amount cannot be negative")
    return micros


def format_usd(micros: int) -> str:
    """Format micro-dollars for people: cents when exact (``$5.00``), else 4+ decimals."""
    sign = "-" if micros < 0 else ""
    value = Decimal(abs(micros)) / MICROS_PER_USD
    if abs(micros) % 10_000 == 0:
        return f"{sign}${value:,.2f}"
    text = f"{value:,.6f}".rstrip("0")
    if len(text.split(".")[1]) < 4:
        text = f"{value:,.4f}"
    return f"{sign}${text}"
