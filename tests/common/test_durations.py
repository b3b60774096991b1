import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperqueue.common.durations import format_duration, parse_duration
from hyperqueue.core.limits import MAX_DURATION


@pytest.mark.parametrize(
    "text, seconds",
    [
        # hms
        ("01:02:03", 3723),
        ("1:00:00", 3600),
        ("100:00:00", 360000),
        ("02:03", 123),
        ("00:00:01.5", 1.5),
        ("5", 5),
        ("0", 0),
        ("1.5", 1.5),
        (" 30 ", 30),
        # humantime
        ("1h", 3600),
        ("3m", 180),
        ("14s", 14),
        ("15days 2min 2s", 15 * 86400 + 122),
        ("1h 30m", 5400),
        ("1h30m", 5400),
        ("1 h", 3600),
        ("500ms", 0.5),
        ("2ns", 2e-9),
        ("3us", 3e-6),
        ("3µs", 3e-6),
        ("1nsec", 1e-9),
        ("1usec", 1e-6),
        ("1msec", 1e-3),
        ("1millis 1nanos", 0.001000001),
        ("1seconds 1second 1secs 1sec 1s", 5),
        ("1minutes 1minute 1mins 1min 1m", 300),
        ("1hours 1hour 1hrs 1hr 1h", 5 * 3600),
        ("1days 1day 1d", 3 * 86400),
        ("1weeks 1week 1w", 3 * 7 * 86400),
        ("1months 1month 1M", 3 * 2_630_016),
        ("1years 1year 1y", 3 * 31_557_600),
        ("1.5h", 5400),
        ("0s", 0),
        ("1h  2m\t3s", 3723),
    ],
)
def test_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15)


def test_milliseconds_are_exact():
    assert parse_duration("1s 2ms") == 1.002
    assert parse_duration("300ms") == 0.3


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("x", "expected a number at 'x'"),
        ("h1", "expected a number at 'h1'"),
        ("1x", "unknown time unit 'x', supported units: ns, us, ms, s, m (minutes), h, d, w, M (months), y"),
        ("1H", "unknown time unit 'H', supported units: ns, us, ms, s, m (minutes), h, d, w, M (months), y"),
        ("1h 30", "time unit needed after 30, for example 30s or 30m"),
        ("1h-3m", "expected a number at '-3m'"),
        ("-1h", "expected a number at '-1h'"),
        ("-5", "expected HH:MM:SS, MM:SS, seconds or a duration such as 1h 30m"),
        ("1:2:3:4", "expected HH:MM:SS, MM:SS, seconds or a duration such as 1h 30m"),
        ("1.5:00", "expected HH:MM:SS, MM:SS, seconds or a duration such as 1h 30m"),
        ("1::2", "expected HH:MM:SS, MM:SS, seconds or a duration such as 1h 30m"),
        ("1,5", "expected HH:MM:SS, MM:SS, seconds or a duration such as 1h 30m"),
    ],
)
def test_parse_errors(text, reason):
    with pytest.raises(ValueError) as exc:
        parse_duration(text)
    assert str(exc.value) == f"Invalid duration '{text}': {reason}"


def test_parse_non_string():
    with pytest.raises(ValueError):
        parse_duration(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (0.0, "0s"),
        (0.5, "500ms"),
        (1.002, "1s 2ms"),
        (5400, "1h 30m"),
        (90061, "1day 1h 1m 1s"),
        (2 * 86400 + 3, "2days 3s"),
        (3600, "1h"),
        (60, "1m"),
        (1, "1s"),
        (1e-6, "1us"),
        (1e-9, "1ns"),
        (1.000001001, "1s 1us 1ns"),
        (2_630_016, "1month"),
        (2 * 2_630_016, "2months"),
        (31_557_600, "1year"),
        (2 * 31_557_600 + 2_630_016 + 1, "2years 1month 1s"),
        (7 * 86400, "7days"),
        (-3, "0s"),
        (float("nan"), "0s"),
        (float("inf"), "inf"),
    ],
)
def test_format(seconds, text):
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=int(MAX_DURATION) * 10**9))
def test_format_parse_roundtrip(nanos):
    # humantime's own output is accepted by the parser
    text = format_duration(nanos / 1e9)
    assert parse_duration(text) == pytest.approx(nanos / 1e9, rel=1e-9, abs=1e-9)


# -- limits: every parsed duration is finite and at most MAX_DURATION (10 years) -------------

@pytest.mark.parametrize("text", ["10y", "3652days 12h", "119months", "315576000", "87660:00:00",
                                  "0000000000000000000000000000000000000000005s"])
def test_parse_up_to_ten_years(text):
    assert 0 < parse_duration(text) <= MAX_DURATION


@pytest.mark.parametrize(
    "text",
    ["11y", "10y 1s", "315576001", "87660:00:01", "30000000000000000000000000000000ns",
     "1" + "0" * 400, "1" + "0" * 400 + "s", "9" * 5000 + "h", "1:" + "9" * 5000 + ":00",
     "99999999999.5y", " ".join(["1y"] * 11)],
)
def test_parse_longer_than_ten_years_is_refused(text):
    with pytest.raises(ValueError) as exc:
        parse_duration(text)
    assert str(exc.value) == f"Invalid duration '{text}': too long (maximum is 10 years)"


@pytest.mark.parametrize("text", ["inf", "nan", "infinity", "-inf", "1e400", "1e3s", "-1s"])
def test_parse_non_finite_or_negative_is_refused(text):
    with pytest.raises(ValueError, match=f"^Invalid duration '{text}': "):
        parse_duration(text)


@given(st.floats(min_value=0, max_value=1e30, allow_nan=False))
def test_parse_result_always_within_limit(seconds):
    text = repr(seconds) if "e" not in repr(seconds) else f"{seconds:.0f}"
    try:
        value = parse_duration(text)
    except ValueError as e:
        assert "too long (maximum is 10 years)" in str(e)
        assert seconds > MAX_DURATION * 0.999
    else:
        assert 0 <= value <= MAX_DURATION
