"""The numbers stay exactly as they were: classical strategies, short learned runs, both
``reproduce … --budget smoke`` tables, on fixed seeds (``tests/golden/numbers.json``)."""

from __future__ import annotations

import json

from golden_support import GOLDEN, capture


def test_the_suites_numbers_match_the_golden_file(tracking_uri, tmp_path):
    expected = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(capture(tmp_path / "tables")))
    for section in ("strategies", "learned", "reproduce"):
        assert sorted(got[section]) == sorted(expected[section]), section
        for key, value in expected[section].items():
            assert got[section][key] == value, f"{section}: {key}"
