"""What a person does in OpenEMR's own pages, in Chromium.

These OpenEMR builds have no CSS/JS build (no jQuery, no Bootstrap): OpenEMR's forms still submit natively, and
what needs OpenEMR's scripts is reached the way the test kit documents (a page opened by URL instead of through
the tab frame). The module's own card and pages must work without those assets, so the tests use them as they
are: every click on the card is a click a clinician makes.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.fixtures.openemr import OpenEmr


def accept_dialogs(page: Any) -> None:
    """OpenEMR's tab frame registers a ``beforeunload`` prompt; dismissing it aborts the next navigation."""
    page.on("dialog", lambda dialog: dialog.accept())


def sign_in(page: Any, oe: OpenEmr, user: str | None = None, password: str | None = None) -> None:
    """The core login form (``interface/login/login.php``), as a clinician signs in."""
    user = user or oe.admin[0]
    password = password or oe.admin[1]
    accept_dialogs(page)
    page.goto(f"{oe.url}/interface/login/login.php?site=default")
    page.fill("input[name=authUser]", user)
    page.fill("input[name=clearPass]", password)
    with page.expect_navigation():
        page.locator("form[name=login_form] [type=submit], #login-button").first.click()
    # The login answers with the tab frame (main.php?token_main=…); leaving it for a chart is what the
    # tab frame does when a patient is chosen.
    expect(page).to_have_url(re.compile(r"/interface/main/(tabs/main|main_screen)\.php"))


def open_chart(page: Any, oe: OpenEmr, pid: int) -> None:
    """The patient's dashboard (``demographics.php?set_pid=``), as the patient finder opens it."""
    page.goto(f"{oe.url}/interface/patient_file/summary/demographics.php?set_pid={int(pid)}")


def card(page: Any) -> Any:
    """The module's dashboard card."""
    return page.locator("#bbdirect_direct_sharing_expand, .bbdirect-card").first
