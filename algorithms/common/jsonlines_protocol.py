"""The request and response format of the inference scripts.

Batch transform sends `application/jsonlines` with SplitType=Line and BatchStrategy=MultiRecord:
a request body holds N JSON lines (augmented-manifest lines without labels, or with them: the
validation channel is transformed as is). The response is exactly N JSON lines, in order, each
`{"probabilities": [p_0, ..., p_{K-1}]}`; batch transform joins them to the input lines.

`application/json` is accepted as a synonym (a body that is one JSON array is read as its items).
Media-type parameters (`; charset=utf-8`) are ignored. Anything else is a ValueError naming
the content type.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

JSONLINES = "application/jsonlines"
SUPPORTED = (JSONLINES, "application/json", "application/x-jsonlines", "application/jsonl")


def parse_json_object(text: str, where: str, error: type[Exception] = ValueError) -> dict[str, Any]:
    """One JSON Lines record, which must be an object; `error` names `where` and the problem."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise error(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def _media_type(content_type: str | None, default: str) -> str:
    if content_type is None or not str(content_type).strip():
        return default
    return str(content_type).split(";", 1)[0].strip().lower()


def parse_request(request_body: bytes | bytearray | str, content_type: str | None) -> list[dict[str, Any]]:
    """The request's records, one per non-blank line."""
    media = _media_type(content_type, JSONLINES)
    if media not in SUPPORTED:
        raise ValueError(
            f"unsupported content type {content_type!r}: this model accepts {', '.join(SUPPORTED)}"
        )
    if isinstance(request_body, (bytes, bytearray, memoryview)):
        try:
            text = bytes(request_body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"request body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    elif isinstance(request_body, str):
        text = request_body
    else:
        raise ValueError(f"request body must be bytes or str, got {type(request_body).__name__}")
    text = text.lstrip("\ufeff")
    if media == "application/json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"request body is not a valid JSON array ({exc.msg})") from None
        records = list(items)
        for index, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise ValueError(f"request item {index}: expected a JSON object, got {type(record).__name__}")
        return records
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        records.append(parse_json_object(line, f"request line {number}"))
    return records


def response_content_type(accept: str | None) -> str:
    """The media type a response to `accept` is sent as (application/jsonlines for any wildcard)."""
    media = _media_type(accept, JSONLINES)
    if media in ("*/*", "application/*"):
        media = JSONLINES
    if media not in SUPPORTED:
        raise ValueError(f"unsupported accept type {accept!r}: this model answers {JSONLINES}")
    return media


def format_response(probabilities: Sequence[Sequence[float]], accept: str | None) -> str:
    """One `{"probabilities": [...]}` line per row, newline-terminated."""
    response_content_type(accept)
    rows = probabilities.tolist() if hasattr(probabilities, "tolist") else probabilities
    return "".join(json.dumps({"probabilities": [float(p) for p in row]}) + "\n" for row in rows)
