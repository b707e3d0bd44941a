"""The console in a real headless Chromium (Debian's ``chromium`` driven through Debian's ``chromium-driver``)
against a fleet started by ``edgefleet up``: a shop editor's afternoon, page by page, with screenshots.

Screenshots go to ``$EDGEFLEET_TEST_OUTPUT/console`` when set, else to the test's temporary directory
(its path is printed), at a 360 px phone width and a desktop width.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import require
from tests.console.conftest import ConsoleFleet, eventually

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTHS = {"phone": 360, "desktop": 1280}
IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
"""What Chromium sends for <img>: the second view must ask for the same variant the page's first view cached."""


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("EDGEFLEET_TEST_OUTPUT")
    folder = Path(base) / "console" if base else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    require(Path(CHROMIUM).exists(), "Chromium (Debian package 'chromium')")
    require(Path(CHROMEDRIVER).exists(), "ChromeDriver (Debian package 'chromium-driver')")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--disable-extensions", f"--window-size={WIDTHS['desktop']},1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(browser: WebDriver) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def screenshots(browser: WebDriver, output: Path, name: str) -> None:
    for label, width in WIDTHS.items():
        browser.set_window_size(width, 1000)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, min(max(int(height) + 100, 600), 6000))
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        path = output / f"{name}-{label}.png"
        browser.save_screenshot(str(path))
        assert path.stat().st_size > 5000, f"{path} has content"
        if label == "phone":
            wide = browser.execute_script(
                "const w = document.documentElement.clientWidth;"
                "return Array.from(document.querySelectorAll('body *'))"
                ".filter(e => e.getBoundingClientRect().right > w + 1)"
                ".map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 8)"
            )
            assert overflow <= 0, f"the {name} page scrolls sideways at {width} px ({overflow} px too wide: {wide})"
    browser.set_window_size(WIDTHS["desktop"], 1000)


def unlabelled_controls(browser: WebDriver) -> list[str]:
    script = """
      return Array.from(document.querySelectorAll('input:not([type=hidden]), textarea, select, button'))
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map(el => el.outerHTML.slice(0, 120));
    """
    result: list[str] = browser.execute_script(script)
    return result


def photo(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1200, 900), colour).save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name, colour in (("red-shoe.jpg", (200, 30, 30)), ("green-bag.jpg", (30, 160, 60)),
                         ("blue-hat.jpg", (30, 60, 200))):  # fmt: skip
        path = folder / name
        path.write_bytes(photo(colour))
        paths.append(path)
    return paths


def test_editor_signs_in_with_the_keyboard(browser: WebDriver, console_fleet: ConsoleFleet, output_dir: Path) -> None:
    browser.get(console_fleet.url + "/assets")
    assert browser.current_url.endswith("/login"), "a stranger is sent to sign in"
    assert unlabelled_controls(browser) == []
    screenshots(browser, output_dir, "sign-in")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the skip link
    browser.switch_to.active_element.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "token", "Tab reaches the token field"
    focused.send_keys(console_fleet.tokens.console, Keys.TAB)
    assert browser.switch_to.active_element.text == "Sign in"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    eventually(lambda: browser.current_url.endswith("/assets"), "the assets page after signing in", 30)
    assert console_fleet.tokens.console not in browser.current_url
    storage = browser.execute_script("return JSON.stringify([localStorage, sessionStorage]) + document.cookie")
    assert console_fleet.tokens.console not in storage and "edgefleet_console" not in storage, (
        "neither the token nor the session is readable by scripts"
    )
    assert console_errors(browser) == []


def test_three_uploads_each_reach_100_percent_and_their_thumbnails_warm_the_fleet(
    browser: WebDriver, console_fleet: ConsoleFleet, photos: list[Path], output_dir: Path
) -> None:
    browser.get(console_fleet.url + "/assets")
    assert unlabelled_controls(browser) == []
    browser.find_element(By.ID, "upload-prefix").send_keys("catalogue/")
    browser.find_element(By.ID, "upload-tags").send_keys("spring-sale")
    browser.find_element(By.ID, "upload-files").send_keys("\n".join(str(p) for p in photos))
    keys = [f"catalogue/{p.name}" for p in photos]

    def all_uploaded() -> bool:
        items = browser.find_elements(By.CSS_SELECTOR, "#upload-list li")
        states = {
            i.get_attribute("data-key"): (
                i.find_element(By.TAG_NAME, "progress").get_attribute("value"),
                i.find_element(By.CLASS_NAME, "status").text,
            )
            for i in items
        }
        failed = [f"{k}: {s}" for k, (_, s) in states.items() if "failed" in s or "too large" in s or "wrong" in s]
        assert not failed, failed
        return sorted(states) == sorted(keys) and all(v == "100" and s == "uploaded" for v, s in states.values())

    eventually(all_uploaded, "three progress bars at 100% with 'uploaded'", 60)

    def thumbnails_shown() -> bool:
        shown = browser.execute_script(
            "return Array.from(document.querySelectorAll('#asset-list tr[data-key] img.thumb'))"
            ".filter(i => i.complete && i.naturalWidth > 0).map(i => i.closest('tr').dataset.key)"
        )
        return set(keys) <= set(shown)

    eventually(thumbnails_shown, "the three thumbnails in the asset list", 60)
    screenshots(browser, output_dir, "assets")
    fleet = console_fleet.state.balancer_url
    for key in keys:
        second = requests.get(f"{fleet}/assets/{key}?w=160", headers={"Accept": IMAGE_ACCEPT}, timeout=30)
        assert second.status_code == 200
        assert second.headers["X-Cache"].startswith("HIT"), (key, second.headers.get("X-Cache"))
    assert console_errors(browser) == []


def test_files_dropped_on_the_drop_zone_upload_with_progress(browser: WebDriver, console_fleet: ConsoleFleet) -> None:
    browser.get(console_fleet.url + "/assets")
    browser.find_element(By.ID, "upload-prefix").send_keys("dropped")
    # A real drop event carrying real files, as dragging them from the desktop would dispatch.
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        async function image(type, colour) {
          const canvas = document.createElement("canvas");
          canvas.width = 300; canvas.height = 200;
          const context = canvas.getContext("2d");
          context.fillStyle = colour;
          context.fillRect(0, 0, 300, 200);
          return await new Promise((resolve) => canvas.toBlob(resolve, type));
        }
        (async () => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([await image("image/png", "#c0392b")], "banner.png", {type: "image/png"}));
          transfer.items.add(new File([await image("image/webp", "#2e8b3a")], "logo.webp", {type: "image/webp"}));
          const zone = document.getElementById("dropzone");
          zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
          zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
          done(true);
        })();
    """)

    def both_done() -> bool:
        items = browser.find_elements(By.CSS_SELECTOR, "#upload-list li.done")
        return sorted(i.get_attribute("data-key") for i in items) == ["dropped/banner.png", "dropped/logo.webp"]

    eventually(both_done, "both dropped files uploaded", 60)
    bars = browser.find_elements(By.CSS_SELECTOR, "#upload-list li progress")
    assert [b.get_attribute("value") for b in bars] == ["100", "100"]
    eventually(lambda: "dropped/banner.png" in browser.find_element(By.ID, "asset-list").text,
               "the dropped files in the asset list", 30)  # fmt: skip
    assert console_errors(browser) == []


def test_search_by_tag_and_the_object_page_show_what_the_fleet_knows(
    browser: WebDriver, console_fleet: ConsoleFleet, output_dir: Path
) -> None:
    browser.get(console_fleet.url + "/assets")
    browser.find_element(By.ID, "tag").send_keys("spring-sale", Keys.ENTER)
    eventually(lambda: "tag=spring-sale" in browser.current_url, "the search results", 30)
    rows = [r.get_attribute("data-key") for r in browser.find_elements(By.CSS_SELECTOR, "#asset-list tr[data-key]")]
    assert sorted(rows) == ["catalogue/blue-hat.jpg", "catalogue/green-bag.jpg", "catalogue/red-shoe.jpg"]
    browser.find_element(By.LINK_TEXT, "catalogue/red-shoe.jpg").click()
    eventually(lambda: "/assets/object/catalogue/red-shoe.jpg" in browser.current_url, "the object page", 30)
    facts = dict(zip([e.text for e in browser.find_elements(By.CSS_SELECTOR, ".facts dt")],
                     [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".facts dd")], strict=True))  # fmt: skip
    assert facts["Type"] == "image/jpeg"
    assert facts["Tags"] == "spring-sale"
    assert facts["ETag"].startswith('"')
    assert "max-age=" in facts["CDN-Cache-Control (edges)"]
    assert facts["Owning edge"] in {e.name for e in console_fleet.state.edges}
    assert facts["Thumbnail (?w=160) at the fleet"].startswith("HIT"), "the asset list's thumbnail was cached"
    assert "?w=320" in browser.find_element(By.ID, "variants-heading").find_element(By.XPATH, "..").text
    assert unlabelled_controls(browser) == []
    screenshots(browser, output_dir, "object")
    assert console_errors(browser) == []


def test_purge_by_tag_shows_every_edge_acknowledging(
    browser: WebDriver, console_fleet: ConsoleFleet, output_dir: Path
) -> None:
    browser.get(console_fleet.url + "/purges")
    assert unlabelled_controls(browser) == []
    browser.find_element(By.CSS_SELECTOR, 'input[name="kind"][value="tag"]').click()
    browser.find_element(By.ID, "purge-targets").send_keys("spring-sale")
    browser.find_element(By.CSS_SELECTOR, "#purge-form button[type=submit]").click()
    edges = {e.name for e in console_fleet.state.edges}
    assert len(edges) == 2

    def every_edge_acknowledged() -> bool:
        acked = {r.get_attribute("data-edge") for r in browser.find_elements(By.CSS_SELECTOR, "#purge-live tr.acked")}
        return acked == edges and bool(browser.find_elements(By.CSS_SELECTOR, "#purge-summary.ok"))

    eventually(every_edge_acknowledged, "both edges' acknowledgements on the page", 60)
    assert "Every edge acknowledged purge of tag spring-sale" in browser.find_element(By.ID, "purge-summary").text
    eventually(lambda: "tag spring-sale" in browser.find_element(By.ID, "recent-purges").text,
               "the purge in the recent list", 30)  # fmt: skip
    fleet = console_fleet.state.balancer_url
    after = requests.get(f"{fleet}/assets/catalogue/red-shoe.jpg?w=160", headers={"Accept": IMAGE_ACCEPT}, timeout=30)
    assert not after.headers["X-Cache"].startswith("HIT"), "the purged thumbnail is fetched again"
    screenshots(browser, output_dir, "purges")
    assert console_errors(browser) == []


def test_fleet_page_draws_charts_with_data(browser: WebDriver, console_fleet: ConsoleFleet, output_dir: Path) -> None:
    fleet = console_fleet.state.balancer_url

    def charts_have_data() -> bool:
        for i in range(30):  # shop traffic between two samples of the console
            requests.get(f"{fleet}/assets/catalogue/green-bag.jpg?w=160&n={i % 3}", timeout=30)
        browser.get(console_fleet.url + "/fleet")
        points = browser.execute_script(
            "return Object.fromEntries(Array.from(document.querySelectorAll('svg.chart'))"
            ".map(s => [s.id, Number(s.dataset.points)]))"
        )
        return all(points.get(c, 0) >= 2 for c in ("chart-hit-ratio", "chart-p95", "chart-requests", "chart-edges"))

    eventually(charts_have_data, "the fleet charts to have at least two points each", 90)
    lines = browser.find_elements(By.CSS_SELECTOR, "svg#chart-requests polyline.line")
    assert lines, "the requests chart draws a line"
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart g.marker"), "the purge is marked on the time axis"
    captions = [c.text for c in browser.find_elements(By.TAG_NAME, "figcaption")]
    assert len(captions) == 5 and all(len(c) > 20 for c in captions)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.edges tbody tr")
    assert {r.find_element(By.TAG_NAME, "th").text for r in rows} == {e.name for e in console_fleet.state.edges}
    screenshots(browser, output_dir, "fleet")
    assert console_errors(browser) == []


def test_signing_out_closes_the_console(browser: WebDriver, console_fleet: ConsoleFleet) -> None:
    browser.get(console_fleet.url + "/fleet")
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    eventually(lambda: browser.current_url.endswith("/login"), "the sign-in page after signing out", 30)
    browser.get(console_fleet.url + "/assets")
    assert browser.current_url.endswith("/login")
    assert console_errors(browser) == []
