"""The web console in a real browser (Debian's Chromium driven by Playwright) against the
embedded demo (its config and lanes, on free ports) run as a real ``qwend`` daemon.

Run with ``make browser``. Screenshots (desktop, dark, phone) are written to
``build/screenshots/`` and the path is printed.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tomli_w
from playwright.async_api import Browser, Dialog, Locator, Page, async_playwright, expect

from qwend.sim.images import solid_png
from tests.support.daemonproc import DaemonProc, free_port, run_daemon, short_dir
from tests.support.paths import DEMO_CONFIG, REPO

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "build" / "screenshots"
HISTORY_BUDGET = 2500
TOPICS = ("scheduler", "KV cache", "NPU memory", "tokenizer", "router", "promotion")
XSS = "Look: <img src=x onerror=alert(1)> and <script>alert(2)</script> but **this is bold**."


def demo_config(base: Path, keys: Path | None = None) -> tuple[Path, str]:
    """The demo's qwend.toml and lanes.d on free ports under ``base``; the console URL."""
    main = tomllib.loads(DEMO_CONFIG.read_text())
    run = short_dir()
    main["daemon"] |= {
        "control_socket": str(run / "control.sock"),
        "state_dir": str(base / "state"),
        "log_dir": str(base / "logs"),
    }
    main["router"]["listen"] = f"127.0.0.1:{free_port()}"
    console = f"127.0.0.1:{free_port()}"
    # A small history budget, so a few long messages show compression at work.
    main["public"] = {
        "console_listen": console,
        "history_budget_tokens": HISTORY_BUDGET,
        "keep_recent_turns": 2,
    }
    if keys is not None:
        main["public"]["api_keys_file"] = str(keys)
    main["monitor"] = {"enabled": False}
    (base / "lanes.d").mkdir(parents=True)
    ports: dict[int, int] = {}
    for path in sorted((DEMO_CONFIG.parent / "lanes.d").glob("*.toml")):
        lane = tomllib.loads(path.read_text())
        old = lane["lane"]["port"]
        lane["lane"]["port"] = ports.setdefault(old, free_port())  # in-place pairs share one
        (base / "lanes.d" / path.name).write_bytes(tomli_w.dumps(lane).encode())
    (base / "qwend.toml").write_bytes(tomli_w.dumps(main).encode())
    return base / "qwend.toml", f"http://{console}"


@contextlib.asynccontextmanager
async def run_demo(
    tmp_path: Path, keys: Path | None = None
) -> AsyncIterator[tuple[DaemonProc, str]]:
    """The demo as a real daemon; yields it and the console URL once every lane is ready."""
    config, url = demo_config(tmp_path, keys)
    scripts = str(Path(sys.executable).parent)  # qwend-sim, as `qwend --demo` finds it
    env = {"PATH": f"{scripts}:/usr/bin:/bin", "QWEND_SIM_STATE_DIR": str(tmp_path / "sim")}
    async with run_daemon(config, env=env) as daemon:
        await daemon.wait_lanes({"mm": "ready", "stable": "ready", "throughput": "ready"})
        yield daemon, url


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[DaemonProc, str]]:
    async with run_demo(tmp_path) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


def image_file(tmp: Path, name: str, width: int, height: int, grey: int) -> Path:
    path = tmp / name
    path.write_bytes(solid_png(width, height, grey))
    return path


async def max_tokens(page: Page, n: int) -> None:
    """Set Max tokens in the settings panel (opened when closed)."""
    if await page.locator("#settings").get_attribute("open") is None:
        await page.click("#settings summary")
    await page.fill("#max-tokens", str(n))
    await page.dispatch_event("#max-tokens", "change")


DROP_AND_PASTE = """async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 40; canvas.height = 30;
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  const file = (name) => new File([blob], name, { type: "image/png" });
  const dropped = new DataTransfer();
  dropped.items.add(file("dropped.png"));
  document.querySelector(".main").dispatchEvent(
    new DragEvent("drop", { dataTransfer: dropped, bubbles: true, cancelable: true }));
  const pasted = new DataTransfer();
  pasted.items.add(file("pasted.png"));
  document.getElementById("input").dispatchEvent(
    new ClipboardEvent("paste", { clipboardData: pasted, bubbles: true, cancelable: true }));
}"""


def long_message(n: int) -> str:
    """About 1,000 tokens of distinct sentences."""
    return " ".join(
        f"Note {n}.{j}: the {TOPICS[(n + j) % len(TOPICS)]} team measured {n * 31 + j} units"
        f" on lane {j % 3} while the {TOPICS[j % len(TOPICS)]} stayed within budget."
        for j in range(40)
    )


async def close_settings(page: Page) -> None:
    """Fold the settings panel away (the chat gets the room)."""
    if await page.locator("#settings").get_attribute("open") is not None:
        await page.click("#settings summary")


async def send(page: Page, text: str) -> None:
    await page.fill("#input", text)
    await page.click("#send")


def last_answer(page: Page) -> Locator:
    return page.locator("article.msg.assistant").last


async def wait_answered(page: Page) -> None:
    await expect(page.locator("#send")).to_be_visible(timeout=60_000)
    await expect(last_answer(page).locator(".stats")).to_be_visible()


async def stat(page: Page, name: str) -> str:
    return await last_answer(page).locator(f'[data-stat="{name}"] .stat-value').inner_text()


async def test_the_console_in_chromium(
    demo: tuple[DaemonProc, str], browser: Browser, tmp_path: Path
) -> None:
    _daemon, url = demo
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    problems: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await page.goto(url + "/")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    options = await page.locator("#target option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["router", "role:multimodal", "role:stable", "role:throughput"]

    # 1. A streamed answer: tokens arrive one after another, then the statistics.
    await max_tokens(page, 40)
    await send(page, "Tell me how the lanes share the NPUs.")
    content = last_answer(page).locator(".content")
    await expect(page.locator("#stop")).to_be_visible()
    await expect(content).not_to_be_empty(timeout=30_000)
    partial = await content.inner_text()
    await wait_answered(page)
    final = await content.inner_text()
    assert partial and len(final) > len(partial) and final.startswith(partial[:8])
    assert re.fullmatch(r"\d+ ms", await stat(page, "TTFT"))
    assert float(await stat(page, "tok/s")) > 0
    assert int(await stat(page, "output")) == 40
    assert int(await stat(page, "prompt")) > 0
    assert await stat(page, "KV cached") == "n/a"  # the sim reports no cached tokens
    assert await stat(page, "lane") in ("stable", "throughput")

    # 1b. Streaming off: the answer arrives whole, the statistics are still filled in.
    await page.uncheck("#stream")
    await send(page, "Once more, in one piece.")
    await wait_answered(page)
    assert int(await stat(page, "output")) == 40
    assert float(await stat(page, "tok/s")) > 0
    await page.check("#stream")

    # 2. Two images in one turn (one larger than the limit: scaled down in the browser).
    await page.set_input_files(
        "#file-input",
        [
            image_file(tmp_path, "wide.png", 3000, 1200, 90),
            image_file(tmp_path, "small.png", 320, 240, 200),
        ],
    )
    await expect(page.locator("#attachments .chip")).to_have_count(2)
    assert await page.locator(".chip-size").all_inner_texts() == ["1536×614", "320×240"]
    await send(page, "What colours are these two pictures?")
    await wait_answered(page)
    await expect(page.locator("article.msg.user").last.locator("img")).to_have_count(2)
    assert await stat(page, "lane") == "mm"

    # 2b. Dropping and pasting images attaches them too (events built in the page).
    await page.evaluate(DROP_AND_PASTE)
    await expect(page.locator("#attachments .chip")).to_have_count(2)
    await page.locator(".chip-remove").first.click()
    await page.locator(".chip-remove").first.click()
    await expect(page.locator("#attachments")).to_be_hidden()

    # 3. Model output with HTML and a script is shown as text, never run.
    await page.click("#new-session")
    await expect(page.locator("#sessions li")).to_have_count(2)
    await send(page, "/echo " + XSS)
    await wait_answered(page)
    answer = last_answer(page).locator(".content")
    text = await answer.inner_text()
    assert "<img src=x onerror=alert(1)>" in text and "<script>alert(2)</script>" in text
    assert await answer.locator("strong").inner_text() == "this is bold"  # markdown still works
    assert await page.locator("#chat img[src='x'], #chat script").count() == 0
    assert dialogs == []

    # 4. Sessions: switch back to the first and find its conversation, then return.
    await page.locator("#sessions .session-button").nth(1).click()
    await expect(page.locator("#chat")).to_contain_text("Tell me how the lanes share the NPUs.")
    await expect(page.locator("article.msg.user")).to_have_count(3)
    await page.locator("#sessions .session-button").nth(0).click()
    await expect(page.locator("#chat")).to_contain_text("<script>alert(2)</script>")

    # 4b. A long conversation: older turns compressed, the badge shows what was dropped.
    await page.click("#new-session")
    await max_tokens(page, 16)
    for n in range(3):
        await send(page, long_message(n))
        await wait_answered(page)
    badge = last_answer(page).locator(".compression summary")
    await expect(badge).to_have_text(re.compile(r"history compressed \d+ → \d+ tokens"))
    before, after = map(int, re.findall(r"\d+", await badge.inner_text()))
    assert before > HISTORY_BUDGET >= after
    assert int(await stat(page, "prompt")) <= HISTORY_BUDGET  # the lane's own count
    await close_settings(page)
    await badge.click()
    report = last_answer(page).locator(".compression-body")
    await expect(report.locator(".turn").first).to_be_visible()
    assert await report.locator(".sentences.dropped li").count() > 0
    assert await report.locator(".sentences.kept li").count() > 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SHOTS / "console-compression.png", full_page=True)

    # 4c. Export: the session as a JSON document.
    async with page.expect_download() as download_info:
        await page.click("#export-session")
    download = await download_info.value
    exported = json.loads(Path(await download.path()).read_text())
    assert exported["format"] == "qwend-console-session"
    assert len(exported["session"]["messages"]) == 6

    await page.locator("#sessions .session-button").nth(1).click()

    # 5. Stop: an answer cut short says so.
    await max_tokens(page, 2000)
    await send(page, "Write a long essay about schedulers.")
    await expect(last_answer(page).locator(".content")).not_to_be_empty(timeout=30_000)
    await page.click("#stop")
    await expect(last_answer(page).locator(".error")).to_have_text("Stopped.")

    await page.locator("#sessions .session-button").nth(2).click()
    await close_settings(page)  # closed again: the chat gets the room
    await page.screenshot(path=SHOTS / "console-desktop.png", full_page=True)
    await page.emulate_media(color_scheme="dark")
    await page.screenshot(path=SHOTS / "console-desktop-dark.png", full_page=True)
    await page.emulate_media(color_scheme="light")

    # 6. Phone width: nothing overflows sideways, the sessions drawer opens, chat works.
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(page.locator("#toggle-sidebar")).to_be_visible()
    await expect(page.locator("#sidebar")).not_to_be_in_viewport()
    await max_tokens(page, 24)
    await close_settings(page)
    await send(page, "And on a phone?")
    await wait_answered(page)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await page.screenshot(path=SHOTS / "console-phone.png", full_page=True)
    await page.emulate_media(reduced_motion="reduce")  # no slide-in animation to wait for
    await page.click("#toggle-sidebar")
    await expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)
    await page.screenshot(path=SHOTS / "console-phone-sessions.png", full_page=True)

    assert problems == [] and dialogs == []
    print(f"\nconsole screenshots: {SHOTS}/console-*.png")
    await context.close()


async def test_the_console_asks_for_an_api_key_once(browser: Browser, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("sk-console-browser-1 name=lab\n")
    async with run_demo(tmp_path / "demo", keys) as (_daemon, url):
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        page = await context.new_page()
        await page.goto(url + "/")
        dialog = page.locator("#key-dialog")
        await expect(dialog).to_be_visible()
        await page.fill("#key-input", "sk-wrong")
        await page.click("#key-form button[type=submit]")
        await expect(page.locator("#key-error")).to_contain_text("Incorrect API key")
        await expect(dialog).to_be_visible()
        await page.fill("#key-input", "sk-console-browser-1")
        await page.click("#key-form button[type=submit]")
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await expect(dialog).to_be_hidden()
        await max_tokens(page, 8)
        await send(page, "Hello with a key.")
        await wait_answered(page)
        assert await stat(page, "lane") in ("stable", "throughput")
        # Kept in the browser: a reload asks no more.
        await page.reload()
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#forget-key")).to_be_visible()
        await context.close()
