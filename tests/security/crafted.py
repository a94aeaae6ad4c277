"""Crafted inputs that once answered 500 (issue 23): the bad-input corpus and the API fuzz run
both send them, so a regression shows in either."""

from __future__ import annotations

import base64


def crafted_cursor(raw: str) -> str:
    """A cursor as the pages encode one, around any JSON text."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# Each decodes to JSON that no page ever wrote: an Infinity or a huge number where an id
# belongs, a NUL in a key, a deep nest. Also used by the API's fuzz run (tests/api/test_fuzz.py).
CRAFTED_CURSORS = [
    crafted_cursor('{"k":[Infinity],"d":"next"}'),
    crafted_cursor('{"k":[-Infinity],"d":"prev"}'),
    crafted_cursor('{"k":[NaN],"d":"next"}'),
    crafted_cursor('{"k":[1e308],"d":"next"}'),
    crafted_cursor('{"k":[99999999999999999999999],"d":"next"}'),
    crafted_cursor('{"k":["a\\u0000b","00000000-0000-0000-0000-000000000000"],"d":"next"}'),
    crafted_cursor('{"k":["a",Infinity],"d":"next"}'),
    crafted_cursor('{"k":[true],"d":"next"}'),
    crafted_cursor('{"k":[[1]],"d":"next"}'),
    crafted_cursor('{"k":"tenants","c":"2026-01-01T00:00:00+00:00","i":Infinity}'),
    crafted_cursor('{"k":"events","i":Infinity}'),
    crafted_cursor('{"k":"audit","i":1e308}'),
    crafted_cursor("[" * 5000 + "]" * 5000),
    "%00",
    "\x00",
]

# Values with a NUL for any query parameter or form field: refused at the door (400, or 422 in
# the API) by controlplane/middleware.py.
NUL_VALUES = ["\x00", "a\x00b", "\x00" * 3]
