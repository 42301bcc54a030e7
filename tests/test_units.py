from hypothesis import given, strategies as st
import pytest

from mmframe.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize("text,value", [("4GiB", 4 << 30), ("896MiB", 896 << 20), (4096, 4096),
                                        ("64KiB", 65536), ("0.5GiB", 1 << 29), ("12", 12), ("1TiB", 1 << 40)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["4GB", "4 gib", "-1", -1, True, 1.5, "1.3B", "", "GiB", None, [1]])
def test_bad_sizes_name_the_forms(bad):
    with pytest.raises(ValueError, match="GiB|whole number"):
        parse_size(bad)


@pytest.mark.parametrize("text,value", [("500ms", 500_000_000), ("15us", 15_000), ("2s", 2 * 10**9), (7, 7)])
def test_durations(text, value):
    assert parse_duration(text) == value


@given(st.integers(min_value=0, max_value=1 << 50))
def test_size_round_trip(n):
    assert parse_size(format_size(n)) == n


@given(st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans(), st.none()))
def test_parse_size_never_escapes(value):
    try:
        result = parse_size(value)
    except ValueError:
        return
    assert isinstance(result, int) and result >= 0
