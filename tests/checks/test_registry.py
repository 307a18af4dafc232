"""The registry: each id names its check, and knowing the ids imports no check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from checks.interface import Check
from checks.registry import CHECKS, LOCATIONS


@pytest.mark.parametrize("check_id", sorted(LOCATIONS))
def test_each_location_makes_the_check_of_that_id(check_id: str) -> None:
    check = CHECKS[check_id]
    assert isinstance(check, Check) and check.id == check_id
    assert CHECKS[check_id] is check, "one instance per id"


def test_an_unknown_id_is_not_there() -> None:
    assert "nope" not in CHECKS
    with pytest.raises(KeyError):
        CHECKS["nope"]


def test_listing_ids_imports_no_check_nor_its_libraries() -> None:
    code = (
        "import sys\n"
        "from checks.registry import CHECKS\n"
        "assert 'health' in CHECKS and len(list(CHECKS)) == len(CHECKS)\n"
        "heavy = [m for m in ('checks.http', 'checks.secrets', 'httpx', 'flask', 'bot.app')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
