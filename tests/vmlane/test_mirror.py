from vmlane.mirror import debian_mirror

DEB822 = """Types: deb
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_the_mirror_comes_from_apt_sources_in_either_format():
    assert debian_mirror("bookworm", {}, {"a.sources": DEB822}) == "http://mirror.example/debian"
    one_line = {"sources.list": "# a comment\ndeb [arch=amd64] http://other.example/debian bookworm main contrib\n"}
    assert debian_mirror("bookworm", one_line, {}) == "http://other.example/debian"


def test_no_mirror_for_a_suite_apt_does_not_serve():
    assert debian_mirror("trixie", {}, {"a.sources": DEB822}) is None
    assert debian_mirror("bookworm", {}, {"a.sources": DEB822.replace("Types: deb\n", "Types: deb-src\n")}) is None
