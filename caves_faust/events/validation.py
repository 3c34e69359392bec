"""Raw Kafka bytes -> a typed sales event, or the reason it is invalid.

Pure functions, no I/O: whatever a producer sends ends here either as a valid event or as an
`InvalidEvent` with an error type and message, never as an exception of another kind.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, cast

from caves_faust.events.records import (
    ADJUSTMENT_TYPES,
    EVENT_TYPES,
    INVENTORY_ADJUSTED,
    ORDER_CREATED,
    InventoryAdjusted,
    OrderCreated,
    SalesEvent,
)

# Ids fit any SQL INTEGER column (Snowflake and the embedded one); quantities beyond these are data errors.
MAX_ID = 2**31 - 1
MAX_QUANTITY = 1_000_000
# Deeper JSON is invalid. Python's parser gives up where the caller's stack plus the nesting reaches the recursion
# limit: a fixed bound makes the verdict on an event the same wherever and however deep it is validated.
MAX_DEPTH = 128


@dataclass(frozen=True)
class InvalidEvent(Exception):
    error_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """A valid event: its typed Record, and its bytes exactly as received (the message's own: no copy held).

    A batch's events wait in memory until Snowflake commits them (seconds): the text is decoded again when a row
    is made rather than kept (a decode per row against ~390 bytes per event held)."""

    event: SalesEvent
    raw: bytes

    @property
    def text(self) -> str:
        """The event exactly as received (UTF-8 JSON, checked by `validate`), for the warehouse."""
        return self.raw.decode("utf-8")


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and Snowflake's PARSE_JSON) does not.
    raise InvalidEvent("not_json", f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidEvent("duplicate_key", f"key {duplicate!r} appears more than once")
    return obj


# Built once: json.loads with options builds a new decoder per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)


def parse_json(raw: bytes | None) -> tuple[dict[str, Any], str]:
    """Decode the payload into a JSON object, keeping its text."""
    if not raw:
        raise InvalidEvent("empty_payload", "the message has no value")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not_utf8", f"not UTF-8 at byte {exc.start}") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent("not_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidEvent("not_json", TOO_DEEP) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise InvalidEvent("not_json", str(exc)[:200]) from None
    if text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):  # counts first: cheap
        raise InvalidEvent("not_json", TOO_DEEP)
    if not isinstance(value, dict):
        raise InvalidEvent("not_object", f"expected a JSON object, got {_json_type(value)}")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise InvalidEvent("not_json", "a string holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF)")
    return value, text


TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels (level by level: no recursion)."""
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list))]
        if not level:
            return False
    return True


# JSON may escape a lone surrogate ("\ud800"); it is no Unicode text, and warehouses refuse it. The
# regex is a cheap pre-check so that only the rare payloads with such escapes are walked.
_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _required(obj: dict[str, Any], name: str) -> Any:
    if name not in obj or obj[name] is None:
        raise InvalidEvent("missing_field", f"{obj.get('event_type')} requires {name!r}")
    return obj[name]


def _integer(obj: dict[str, Any], name: str, check: Callable[[int], bool], rule: str, limit: int) -> int:
    value = _required(obj, name)
    if type(value) is not int:  # a JSON true is a bool, and bool is an int in Python
        raise InvalidEvent("wrong_type", f"{name!r} must be an integer, got {_json_type(value)} {_short(value)}")
    if not (check(value) and abs(value) <= limit):
        raise InvalidEvent("out_of_range", f"{name!r} must be {rule} and at most {limit} in size, got {_short(value)}")
    return value


def _identifier(obj: dict[str, Any], name: str) -> str:
    value = _required(obj, name)
    if type(value) is int and 0 <= value <= MAX_ID:
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    raise InvalidEvent("wrong_type",
                       f"{name!r} must be a non-negative integer or a non-empty string, got {_short(value)}")


def _optional(obj: dict[str, Any], name: str, kind: type, low: float | None = None, high: float | None = None) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    if kind is float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise InvalidEvent("wrong_type", f"{name!r} must be a number, got {_json_type(value)} {_short(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidEvent("out_of_range", f"{name!r} must be between {low} and {high}, got {_short(value)}")
        return float(value)
    if not isinstance(value, kind):
        raise InvalidEvent("wrong_type", f"{name!r} must be a {kind.__name__}, got {_json_type(value)} {_short(value)}")
    return value or None  # a blank text counts as absent (the stored event keeps it as received)


# Names repeated across events (products, categories, channels, warehouses) are held once while events wait for
# their commit, rather than once per event: up to this length (a longer one is left as it is).
SHARED_NAME_CHARS = 100


def _name(obj: dict[str, Any], name: str) -> str | None:
    """An optional text field whose few values repeat from event to event, shared (`sys.intern`)."""
    value = _optional(obj, name, str)
    return sys.intern(value) if value is not None and len(value) <= SHARED_NAME_CHARS else value


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _positive(n: int) -> bool:
    return n > 0


def _nonzero(n: int) -> bool:
    return n != 0


def _product_id(obj: dict[str, Any]) -> int:
    return _integer(obj, "product_id", lambda n: n >= 0, "a non-negative integer", MAX_ID)


def _order(obj: dict[str, Any]) -> OrderCreated:
    return OrderCreated(
        event_type=ORDER_CREATED,
        order_line_id=_identifier(obj, "order_line_id"),
        customer_id=_integer(obj, "customer_id", lambda n: n >= 0, "a non-negative integer", MAX_ID),
        product_id=_product_id(obj),
        quantity=_integer(obj, "quantity", _positive, "greater than 0", MAX_QUANTITY),
        product_name=_name(obj, "product_name"),
        category=_name(obj, "category"),
        unit_price=_optional(obj, "unit_price", float, 0),
        discount=_optional(obj, "discount", float, 0, 1),
        total_price=_optional(obj, "total_price", float, 0),
        bottle_size_liters=_optional(obj, "bottle_size_liters", float, 0),
        sales_channel=_name(obj, "sales_channel"),
        event_timestamp=_optional(obj, "event_timestamp", str),
    )


def _adjustment(obj: dict[str, Any]) -> InventoryAdjusted:
    adjustment_type = _required(obj, "adjustment_type")
    if adjustment_type not in ADJUSTMENT_TYPES:
        raise InvalidEvent(
            "out_of_range",
            f"'adjustment_type' must be one of {', '.join(ADJUSTMENT_TYPES)}, got {_short(adjustment_type)}"
        )
    return InventoryAdjusted(
        event_type=INVENTORY_ADJUSTED,
        event_id=_identifier(obj, "event_id"),
        product_id=_product_id(obj),
        quantity_change=_integer(obj, "quantity_change", _nonzero, "a non-zero integer", MAX_QUANTITY),
        adjustment_type=ADJUSTMENT_TYPES[ADJUSTMENT_TYPES.index(adjustment_type)],  # the constant, held once
        warehouse=_name(obj, "warehouse"),
        batch_number=_optional(obj, "batch_number", str),
        event_timestamp=_optional(obj, "event_timestamp", str),
    )


_BUILDERS: dict[str, Callable[[dict[str, Any]], SalesEvent]] = {
    ORDER_CREATED: _order,
    INVENTORY_ADJUSTED: _adjustment,
}


def validate(raw: bytes | None) -> ValidEvent:
    """The typed event for `raw`, or raise InvalidEvent saying why not."""
    obj, _ = parse_json(raw)
    event_type = _required(obj, "event_type")
    build = _BUILDERS.get(event_type) if isinstance(event_type, str) else None
    if build is None:
        raise InvalidEvent("unknown_event_type",
                           f"event_type must be one of {', '.join(EVENT_TYPES)}, got {_short(event_type)}")
    return ValidEvent(build(obj), cast(bytes, raw))
