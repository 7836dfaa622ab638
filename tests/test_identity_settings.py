"""GUESTGRAPH_IDENTITY_* settings shape the matching guardrails."""

from __future__ import annotations

import pytest

from api.settings import load_settings


def test_identity_settings_build_the_match_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUESTGRAPH_IDENTITY_PHONE_MAX_CUSTOMERS", "5")
    monkeypatch.setenv("GUESTGRAPH_IDENTITY_SHARED_PHONE_NAME_MAX_CUSTOMERS", "0")
    monkeypatch.setenv("GUESTGRAPH_IDENTITY_BLOCKED_EMAILS", "front.desk@diner.com, walkin@")
    monkeypatch.setenv("GUESTGRAPH_IDENTITY_BLOCKED_PHONES", "(212) 555-0100")
    policy = load_settings().match_policy()
    assert policy.phone_max_customers == 5
    assert policy.email_max_customers == 2
    assert policy.shared_phone_name_max_customers == 0
    assert "front.desk@diner.com" in policy.blocked_emails
    assert "none@none.com" in policy.blocked_emails
    assert "walkin" in policy.blocked_email_local_parts
    assert policy.blocked_phones == frozenset({"+12125550100"})
