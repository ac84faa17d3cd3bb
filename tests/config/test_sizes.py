import pytest
from oomlab.config.sizes import format_size, parse_size, written_decimal
from oomlab.errors import BadInput


@pytest.mark.parametrize(
    "text,expected",
    [
        ("256MiB", 256 * 2**20),
        ("512M", 512 * 2**20),
        ("1.5GiB", int(1.5 * 2**30)),
        ("100MB", 100_000_000),
        ("4096B", 4096),
        ("1g", 2**30),
        (" 64 mib ", 64 * 2**20),
        ("256Mi", 256 * 2**20),  # Kubernetes' binary suffixes
        ("1Gi", 2**30),
        ("512Ki", 512 * 1024),
        ("256mb", 256_000_000),  # decimal, whatever the case
        ("256M", 256 * 2**20),  # Docker's binary M (Kubernetes' bare M would be decimal)
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "12XB", "-5M", "0M", "1.2.3M"])
def test_bad_sizes_say_how_to_write_one(text):
    with pytest.raises(BadInput, match=r"256MiB|greater than zero"):
        parse_size(text)


@pytest.mark.parametrize("text", ["256", " 256 ", "0", "1.5", "268435456"])
def test_a_size_without_a_unit_is_refused_in_one_sentence(text):
    number = text.strip()
    with pytest.raises(BadInput, match=rf"^{number} has no unit: write {number}MiB \(or {number}B for bytes\)$"):
        parse_size(text)


def test_format_size():
    assert format_size(256 * 2**20) == "256.0 MiB"
    assert format_size(512) == "512 B"
    assert format_size(None) == "-"


def test_a_size_in_decimal_units_is_told_apart_for_the_report():
    assert [written_decimal(text) for text in ("256MB", "256mb", "1.5GB", "300KB", "1TB")] == [True] * 5
    assert [written_decimal(text) for text in ("256MiB", "256M", "256k", "5B", "junk", "")] == [False] * 6
