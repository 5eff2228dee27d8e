"""The inspection record's rules: 达标 derived and checked, notes bounded and masked, photos checked."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.inspections.record import (
    JPEG_MAGIC,
    PNG_MAGIC,
    InspectionError,
    InspectionIn,
    Place,
    build,
    check_photo,
    clean_notes,
    derive_passed,
)

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def body(**kw: object) -> InspectionIn:
    base: dict[str, object] = {
        "time": "2026-12-01T09:00:00+08:00",
        "place_kind": "area",
        "place": "A01",
        "labelled": True,
        "containers": [{"category": "wet", "pure": True}, {"category": "dry", "pure": True}],
        "guidance": True,
        "clean": True,
        "records": True,
        "score": 92,
    }
    return InspectionIn.model_validate({**base, **kw})


def test_passed_is_derived_from_score_and_items() -> None:
    assert derive_passed(body(), 90) is True
    assert derive_passed(body(score=89), 90) is False
    assert derive_passed(body(score=89), 85) is True  # the pass mark is a setting
    assert derive_passed(body(clean=False), 90) is False
    impure = [{"category": "wet", "pure": False}, {"category": "dry", "pure": True}]
    assert derive_passed(body(containers=impure), 90) is False


def test_contradictions_are_refused() -> None:
    with pytest.raises(InspectionError, match="passed: true contradicts .*below the pass mark 90"):
        derive_passed(body(score=80, passed=True), 90)
    with pytest.raises(InspectionError, match="a 五有 item fails"):
        derive_passed(body(records=False, passed=True), 90)
    with pytest.raises(InspectionError, match="100 points with a failing"):
        derive_passed(body(score=100, guidance=False), 90)
    assert derive_passed(body(passed=True), 90) is True


def test_notes_are_bounded_masked_and_plain() -> None:
    assert clean_notes("call 138 0013 8000 about bin 3", 500) == "call ############# about bin 3"
    with pytest.raises(InspectionError, match="at most 10 characters"):
        clean_notes("x" * 11, 10)
    with pytest.raises(InspectionError, match="no markup"):
        clean_notes("<script>alert(1)</script>", 500)
    with pytest.raises(InspectionError, match="control characters"):
        clean_notes("bell\x07", 500)


def test_photos_must_be_small_jpeg_or_png() -> None:
    assert check_photo(JPEG_MAGIC + b"x", 100)[1] == "jpg"
    assert check_photo(PNG_MAGIC + b"x", 100, "image/png")[1] == "png"
    with pytest.raises(InspectionError, match="more than the limit"):
        check_photo(JPEG_MAGIC + b"x" * 200, 100)
    with pytest.raises(InspectionError, match="not a JPEG or PNG"):
        check_photo(b"GIF89a....", 100)
    with pytest.raises(InspectionError, match="not image/jpeg or image/png"):
        check_photo(JPEG_MAGIC, 100, "text/html")
    with pytest.raises(InspectionError, match="not a JPEG or PNG"):
        check_photo(PNG_MAGIC, 100, "image/jpeg")  # declared type and bytes disagree


def test_time_must_be_aware_recent_and_not_future() -> None:
    place = Place("area", "A01", "A01")

    def make(when: str) -> object:
        return build(
            body(time=when),
            place,
            pass_score=90,
            notes_limit=500,
            max_age_days=366,
            photo="",
            by="t",
            now=NOW,
        )

    assert make("2026-12-01T10:00:00+08:00")
    with pytest.raises(InspectionError, match="in the future"):
        make("2026-12-01T12:00:00+08:00")
    with pytest.raises(InspectionError, match="more than 366 days ago"):
        make("2025-01-01T10:00:00+08:00")
    with pytest.raises(InspectionError, match="UTC offset"):
        make("2026-12-01T10:00:00")
