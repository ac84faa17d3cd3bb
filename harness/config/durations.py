"""Every duration oomlab prints, by one rule: three significant figures at most and no trailing zeros
(no float noise such as 0.30000000000000004 s), milliseconds below a second, whole seconds from a minute."""

from __future__ import annotations


def format_seconds(value: float | None) -> str:
    """`0.000412` -> "0.41 ms", `0.0523` -> "52.3 ms", `0.4567` -> "457 ms", `1.0` -> "1 s",
    `1.5` -> "1.5 s", `12.345` -> "12.3 s", `75.4` -> "75 s"; None -> "-"."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    seconds = abs(float(value))
    if round(seconds * 1000) < 1000:
        number, unit = seconds * 1000, "ms"
    else:
        number, unit = seconds, "s"
    whole = number >= 100 or (unit == "s" and number >= 60)
    decimals = 0 if whole else 1 if round(number, 1) >= 10 else 2
    text = f"{number:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{sign}{text} {unit}"
