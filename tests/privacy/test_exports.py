"""The public surface of ``baat.privacy`` is what its ``__all__`` and the docs name."""

from __future__ import annotations

from pathlib import Path

import baat.privacy

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PRIVACY.md").read_text()


def test_every_export_exists() -> None:
    for name in baat.privacy.__all__:
        assert hasattr(baat.privacy, name), name


def test_the_docs_name_the_mechanism() -> None:
    for name in (
        "PrivacyService",
        "verify_ledger",
        "region_for",
        "consent_since",
        "POLICY_VERSION",
    ):
        assert name in DOC, name
