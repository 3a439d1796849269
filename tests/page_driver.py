"""Drives the server's page in headless Chromium as a reader would: type a sentence, pick the
models, translate, and look at the maps. Used by tests/test_page.py (tiny models) and by
``make screenshot`` (the exported models, into reports/page.png):

    python tests/page_driver.py --port 8501 --sentence "Ein Hund läuft." --out reports/page.png
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

# Chromium as root on a closed network: no sandbox, and none of its calls home (they would be refused).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,900")  # fmt: skip


def browsers_installed() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def open_browser(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def read_panel(panel) -> dict:
    def texts(selector: str) -> list[str]:
        return [e.get_attribute("textContent") for e in panel.find_elements(By.CSS_SELECTOR, selector)]

    return {
        "translation": "".join(texts(".translation")),
        "source": texts("thead th")[1:],  # the corner cell first
        "output": texts("tbody th"),
        "cells": len(panel.find_elements(By.CSS_SELECTOR, "tbody td")),
        "map": bool(panel.find_elements(By.CSS_SELECTOR, "table.map")),
        "note": " ".join(texts(".note, .error")),
    }


def translate_on_page(port: int, sentence: str, models: list[str] | None, screenshot: Path | None) -> dict:
    """What the page shows for ``sentence``: per model, its translation, the map's source and output
    pieces, and its note (a model without attention has one instead of a map)."""
    with tempfile.TemporaryDirectory() as profile:
        browser = open_browser(Path(profile))
        try:
            browser.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(browser, 120)
            wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "input[name=model]")))
            for box in browser.find_elements(By.CSS_SELECTOR, "input[name=model]"):
                if models is not None and box.is_selected() != (box.get_attribute("value") in models):
                    box.click()
            field = browser.find_element(By.ID, "source")
            field.clear()
            field.send_keys(sentence)
            browser.find_element(By.ID, "translate").click()
            wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#results[data-done=true]")))
            shown = {}
            for panel in browser.find_elements(By.CSS_SELECTOR, "#results .panel"):
                shown[panel.get_attribute("data-model")] = read_panel(panel)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(screenshot))
            return shown
        finally:
            browser.quit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--sentence", default="Ein kleiner Hund läuft mit einem Ball über eine grüne Wiese.")
    parser.add_argument(
        "--models", nargs="+", default=None, help="the models to tick (default: the page's choice)"
    )
    parser.add_argument("--out", type=Path, default=Path("reports/page.png"))
    args = parser.parse_args()
    for model, seen in translate_on_page(args.port, args.sentence, args.models, args.out).items():
        print(f"{model}: {seen['translation']}  ({'map' if seen['map'] else seen['note']})")
    print(args.out)
