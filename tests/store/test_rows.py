"""How rows spell values: stored times sort as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from bridge.store.rows import iso, parse_iso


def test_iso_is_isoformat_in_utc_with_microseconds_always():
    start = datetime(2026, 11, 23, 23, 59, 58, 999_998, tzinfo=UTC)
    moments = [start + timedelta(microseconds=n) for n in range(4)]  # across a second
    moments += [start + timedelta(seconds=2), datetime(2027, 1, 1, tzinfo=UTC)]  # whole ones
    moments.append(datetime(2026, 11, 24, 10, 30, 0, 5, tzinfo=timezone(timedelta(hours=11))))
    moments.append(moments[0])  # the same second again, after others
    for moment in moments:
        expected = moment.astimezone(UTC).isoformat(timespec="microseconds")
        assert iso(moment) == expected
        assert iso(moment) == expected  # the cached text
        assert parse_iso(iso(moment)) == moment
    texts = [iso(m) for m in sorted(moments)]
    assert texts == sorted(texts)
