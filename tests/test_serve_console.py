"""The console in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
Selenium): sign-in, the auditor's trail and monitor, the admin's users and collections, the reader's
search; strict CSP with no violations, tokens never in URLs or the server log; a screenshot of each
page (written to a temp dir; size and key elements asserted)."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _serve_helpers import Server, start
from _store_helpers import PASS, items

import securecmr

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the browser extra)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip(
        "headless Chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run does)",
        allow_module_level=True,
    )

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WIDTH, HEIGHT = 1280, 900


def _monitored_store(path: Path) -> dict[str, str]:
    """A real store whose monitor is fitted on simulated benign traffic and has blocked a scraper."""
    from securecmr.monitor import QueryAnomalyDetector, TrafficSimulator, synthetic_collection
    from securecmr.monitor._simulator import EPOCH

    now = [EPOCH]
    store = securecmr.Store.create(path, passphrase=PASS, clock=lambda: now[0])
    try:
        tokens = {
            "admin": store.create_user("root", role="admin", ttl_hours=24 * 365 * 20),
            "auditor": store.create_user("audrey", role="auditor", ttl_hours=24 * 365 * 20),
        }
        codes, topics = synthetic_collection(150, n_topics=5, seed=9)
        admin = store.session(tokens["admin"])
        admin.create_collection("scans", bits=64).add(
            [
                securecmr.Item(f"patient-{i}", codes={"image": codes[i]}, ref=f"scan-{i}.png")
                for i in range(150)
            ]
        )
        sim = TrafficSimulator(codes, topics, seed=9)
        users = ("ana", "ben", "cy", "dee")
        sessions = {
            u: store.session(store.create_user(u, role="reader", ttl_hours=24 * 365 * 20)) for u in users
        }
        plan = sorted((q for u in users for q in sim.benign(u, days=(0, 8))), key=lambda q: q.time)
        for q in plan:
            now[0] = q.time
            sessions[q.principal].collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
        store.monitor.fit(detector=QueryAnomalyDetector(stride=8))
        mallory = store.session(store.create_user("mallory", role="reader", ttl_hours=24 * 365 * 20))
        for q in sim.attack("scraper", "mallory", start_day=9, n_queries=100):
            now[0] = q.time
            with contextlib.suppress(securecmr.errors.PermissionDeniedError):
                mallory.collection("scans").search(code=np.frombuffer(q.code, np.uint8), k=q.k)
        report = store.monitor.report()
        assert report and report[0]["principal"] == "mallory" and report[0]["blocked"]
    finally:
        store.close()
    return tokens


@pytest.fixture(scope="module")
def console_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("console")
    tokens = _monitored_store(tmp / "store")
    server = start(tmp / "store", PASS)
    try:
        yield {"server": server, "tokens": tokens, "tmp": tmp}
    finally:
        server.stop()


def _driver(download_dir: Path) -> Any:
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
        "--no-first-run",
        "--disable-extensions",
    ):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
    )
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(DRIVER))
    return webdriver.Chrome(options=opts, service=service)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    (tmp_path / "downloads").mkdir()
    drv = _driver(tmp_path / "downloads")
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


def _wait(drv: Any, cond: Callable[[Any], Any], timeout: float = 20.0) -> Any:
    return WebDriverWait(drv, timeout).until(cond)


def _sign_in(drv: Any, server: Server, token: str) -> None:
    drv.get(server.url + "/console")
    _wait(drv, lambda d: d.find_element(By.ID, "token").is_displayed())
    drv.find_element(By.ID, "token").send_keys(token)
    drv.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    _wait(drv, lambda d: d.find_element(By.ID, "tabs").is_displayed())


def _shot(drv: Any, path: Path) -> None:
    from PIL import Image

    drv.save_screenshot(str(path))
    with Image.open(path) as img:
        w, h = img.size
    assert w >= WIDTH * 0.9 and h >= 500, (w, h)


def _no_csp_violations(drv: Any) -> None:
    logs = drv.get_log("browser")
    bad = [
        e["message"]
        for e in logs
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]
    assert not bad, bad


def _rows(drv: Any, table: str) -> list[list[str]]:
    """The cells' text of a table, read in one script call (tables are re-rendered as data arrives)."""
    rows: list[list[str]] = drv.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))"
        ".map(tr => Array.from(tr.cells).map(td => td.textContent))",
        table,
    )
    return rows


def _click_in_row(drv: Any, table: str, first_cell: str, selector: str) -> None:
    clicked = drv.execute_script(
        "const tr = Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))"
        ".find(tr => tr.cells[0].textContent === arguments[1]);"
        "const b = tr && tr.querySelector(arguments[2]); if (b) { b.click(); return true; } return false;",
        table,
        first_cell,
        selector,
    )
    assert clicked, f"no {selector} in the {first_cell!r} row of {table}"


def test_sign_in_page_and_bad_token(console_world: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    server: Server = console_world["server"]
    browser.get(server.url + "/console")
    _wait(browser, lambda d: d.find_element(By.ID, "token").is_displayed())
    _shot(browser, tmp_path / "signin.png")
    assert browser.find_element(By.ID, "token").get_attribute("type") == "password"
    browser.find_element(By.ID, "token").send_keys("forged.token.value")
    browser.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    _wait(browser, lambda d: "AuthenticationError" in d.find_element(By.ID, "signin-error").text)
    assert not browser.find_element(By.ID, "tabs").is_displayed()
    _no_csp_violations(browser)


def test_auditor_trail_verify_download_and_monitor(
    console_world: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    server: Server = console_world["server"]
    token = console_world["tokens"]["auditor"]
    _sign_in(browser, server, token)
    tabs = {
        b.get_attribute("data-page"): b.is_displayed()
        for b in browser.find_elements(By.CSS_SELECTOR, "#tabs button")
    }
    assert tabs == {"search": False, "audit": True, "monitor": True, "users": False, "collections": False}
    _wait(browser, lambda d: len(_rows(d, "audit-records")) > 10)
    browser.find_element(By.ID, "audit-action").send_keys("monitor.alert")
    browser.find_element(By.CSS_SELECTOR, "#audit-form button[type=submit]").click()
    _wait(
        browser,
        lambda d: (
            _rows(d, "audit-records") and all(r[3] == "monitor.alert" for r in _rows(d, "audit-records"))
        ),
    )
    assert all(r[2] == "mallory" for r in _rows(browser, "audit-records"))
    browser.find_element(By.ID, "audit-verify").click()
    _wait(browser, lambda d: "Chain verified" in d.find_element(By.ID, "audit-verify-result").text)
    _shot(browser, tmp_path / "audit.png")
    browser.find_element(By.ID, "audit-download").click()
    target = tmp_path / "downloads" / "audit.jsonl"
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = target.read_text().splitlines()
    assert len(lines) > 10 and all("mac" in json.loads(x) for x in lines)

    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=monitor]").click()
    _wait(browser, lambda d: any(r[0] == "mallory" for r in _rows(d, "monitor-report")))
    row = next(r for r in _rows(browser, "monitor-report") if r[0] == "mallory")
    assert row[5] == "yes"
    assert not browser.find_elements(By.CSS_SELECTOR, "#monitor-report button.unblock")  # auditors cannot
    _wait(browser, lambda d: len(_rows(d, "monitor-alerts")) > 0)
    _shot(browser, tmp_path / "monitor.png")
    assert "token" not in browser.current_url and token not in browser.current_url
    _no_csp_violations(browser)
    assert token not in server.log()


def test_admin_users_collections_and_audited_unblock(
    console_world: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    server: Server = console_world["server"]
    token = console_world["tokens"]["admin"]
    _sign_in(browser, server, token)

    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=users]").click()
    _wait(browser, lambda d: any(r[0] == "ana" for r in _rows(d, "users-table")))
    browser.find_element(By.ID, "user-name").send_keys("newbie")
    browser.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    _wait(browser, lambda d: d.find_element(By.ID, "new-token").is_displayed())
    new_token = browser.find_element(By.ID, "new-token-value").get_attribute("value")
    assert new_token and len(new_token) > 20
    _wait(browser, lambda d: any(r[0] == "newbie" for r in _rows(d, "users-table")))
    _shot(browser, tmp_path / "users.png")
    browser.find_element(By.ID, "new-token-hide").click()
    _click_in_row(browser, "users-table", "newbie", "button.revoke")
    _wait(browser, lambda d: any(r[0] == "newbie" and r[4] == "revoked" for r in _rows(d, "users-table")))

    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=collections]").click()
    _wait(browser, lambda d: any(r[0] == "scans" for r in _rows(d, "collections-table")))
    row = next(r for r in _rows(browser, "collections-table") if r[0] == "scans")
    assert row[1] == "150" and row[3] == "salted+encrypted"
    _shot(browser, tmp_path / "collections.png")

    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=monitor]").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#monitor-report button.unblock"))
    browser.find_element(By.CSS_SELECTOR, "#monitor-report input.unblock-reason").send_keys(
        "ticket 42: reviewed"
    )
    browser.find_element(By.CSS_SELECTOR, "#monitor-report button.unblock").click()
    _wait(browser, lambda d: "Unblocked mallory" in d.find_element(By.ID, "monitor-status").text)
    _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#monitor-report button.unblock"))
    _no_csp_violations(browser)
    log = server.log()
    assert token not in log and new_token not in log


def test_unblock_was_audited_with_its_reason(console_world: dict[str, Any]) -> None:
    from securecmr.client import Client

    with Client(console_world["server"].url, console_world["tokens"]["auditor"]) as c:
        recs = c.audit_records(action="monitor.unblock")
    if not recs:
        pytest.skip("runs after the admin console test")
    assert recs[0]["principal"] == "root" and recs[0]["detail"]["reason"] == "ticket 42: reviewed"


@pytest.mark.models
def test_reader_search_page(models_dir: Path, tmp_path: Path, browser: Any) -> None:
    store = securecmr.Store.create(tmp_path / "s", passphrase=PASS)
    try:
        reader = store.create_user("rita", role="reader")
        coll = store.create_collection("notes")
        texts = [
            "a chest x-ray with pleural effusion",
            "a knee mri after a sports injury",
            "a dog on a beach",
        ]
        coll.add([securecmr.Item(f"n{i}", text=t, ref=f"note-{i}.txt") for i, t in enumerate(texts)])
        coll.add(items(5, seed=1))
    finally:
        store.close()
    server = start(tmp_path / "s", PASS)
    try:
        _sign_in(browser, server, reader)
        _wait(browser, lambda d: d.find_element(By.ID, "search-page").is_displayed())
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#search-collection option"))
        browser.find_element(By.ID, "search-text").send_keys("x-ray of the chest")
        browser.find_element(By.ID, "search-k").clear()
        browser.find_element(By.ID, "search-k").send_keys("3")
        browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
        try:
            _wait(browser, lambda d: len(_rows(d, "search-results")) == 3, timeout=60)
        except TimeoutException:
            raise AssertionError(browser.find_element(By.ID, "search-status").text) from None
        rows = _rows(browser, "search-results")
        assert (
            rows[0][1] == "n0" and rows[0][4] == "note-0.txt" and float(rows[0][2]) > float(rows[2][2]) - 1e-9
        )
        _shot(browser, tmp_path / "search.png")
        from PIL import Image

        Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "query.png")
        browser.find_element(By.ID, "search-text").clear()
        browser.find_element(By.ID, "search-image").send_keys(str(tmp_path / "query.png"))
        browser.execute_script("document.querySelector('#search-results tbody').replaceChildren()")
        browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
        try:
            _wait(browser, lambda d: len(_rows(d, "search-results")) == 3, timeout=60)
        except TimeoutException:
            raise AssertionError(browser.find_element(By.ID, "search-status").text) from None
        _no_csp_violations(browser)
        assert "x-ray" not in server.log() and reader not in server.log()
    finally:
        server.stop()
