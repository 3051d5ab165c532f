"""`parse_json`'s fast road (orjson, with the key count and depth proved) answers exactly what the
long road (`parse_json_long`: Python's json with hooks) answers: the same document, or the same
problems. Every channel reads JSON through `parse_json`: the CLI, batch and the service."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.kernel.errors import InputError
from engine.kernel.inputs import parse_json, parse_json_long

MAX = 4 * 1024 * 1024


# ------------------------------------------------------------------ the fast JSON road


def _answer(parse: Any, data: bytes | str) -> Any:
    """The parsed document, or the problems as text."""
    try:
        return parse(data, max_bytes=MAX)
    except InputError as exc:
        return [str(p) for p in exc.problems]


def _same(data: bytes | str) -> None:
    """parse_json (fast road first) answers exactly what parse_json_long answers: the same document, or the same problems."""
    assert _answer(parse_json, data) == _answer(parse_json_long, data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**25), 10**25)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet='ab":\\ {}[],\u00e9', max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='ab":\\ ', max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values, compact=st.booleans())
def test_fast_road_parses_as_parse_json(doc: Any, compact: bool) -> None:
    """Any JSON document, compact or spaced, with quotes and colons inside strings: the same result as the long road."""
    text = json.dumps(doc, separators=(",", ":") if compact else (", ", ": "), ensure_ascii=False)
    _same(text.encode())


@settings(max_examples=200, deadline=None)
@given(
    doc=st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=3), st.integers(), min_size=1, max_size=5),
    spaced=st.sampled_from(['":', '" :', '"\n:', '"\t :']),
    depth=st.integers(0, 5),
)
def test_fast_road_finds_every_duplicate_key(doc: dict[str, int], spaced: str, depth: int) -> None:
    """A duplicated key, at any depth and with any spacing before its colon, is refused as the long road refuses it."""
    key = next(iter(doc))
    body = json.dumps(doc)[:-1] + f', "{key}{spaced} 1}}'
    text = '{"x": ' * depth + body + "}" * depth
    _same(text.encode())
    with pytest.raises(InputError):
        parse_json(text.encode(), max_bytes=MAX)


@pytest.mark.parametrize(
    "data",
    [
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": NaN}',
        b'{"a": 1',
        b"",
        b"   ",
        b"[]",
        b"{}",
        b'{"a":' * 33 + b"1" + b"}" * 33,
        b'{"a":' * 32 + b"1" + b"}" * 32,
        b'{"a": "\\":"}',
        b'{"a\\":": 1}',
        b'{"a": 1, "a\\u0022": 2}',
        b'{"a": 1, "\\u0061": 2}',
        b'{"n": ' + b"9" * 30 + b"}",
        b'{"n": ' + b"9" * 19 + b"}",
        b'{"n": 1e400}',
        b'{"n": -0.0}',
        b'{"n": 0.1000000000000000000001}',
        b'"text"',
        b'{"a": "\xff"}',
        b'{"a": "\\ud800"}',
    ],
)
def test_fast_road_edge_cases(data: bytes) -> None:
    """Byte-order mark, NaN, truncation, empty input, depth 32 and 33, escaped quotes, unicode-escaped duplicate keys, huge numbers, bad UTF-8, lone surrogates: as the long road."""
    _same(data)


def test_a_str_takes_the_same_road_as_its_utf8_bytes() -> None:
    """The CLI passes text: a str is parsed as its UTF-8 bytes (lone surrogates kept, then refused)."""
    for text in ('{"a": "é", "b": [1, 2.5]}', '{"a": 1, "a": 2}', '{"a": "\ud800"}'):
        data = text.encode("utf-8", errors="surrogatepass")
        _same(text)
        _same(data)
        assert _answer(parse_json, text) == _answer(parse_json, data)
