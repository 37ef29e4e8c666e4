"""Screenshots of the console for docs/console.md, taken with the browser the tests use.

Usage: ``python examples/deploy/screenshots.py [OUT_DIR]`` (default ``docs/``). It runs
``phaselog demo`` into a temporary SQLite store, serves it read-only on a free port of
127.0.0.1, and has the system Chromium (``$PHASELOG_CHROMIUM``, else ``chromium`` on PATH)
capture the overview, the demo plugin's page, its failed plan's page and a state with
what its event changed, through Playwright.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from phaselog.adapters.serve.app import ConsoleServer, open_read_only


def main(out: Path) -> None:
    chromium = os.environ.get("PHASELOG_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "phaselog", "demo", "--url", url],
            check=True,
            capture_output=True,
            timeout=300,
        )
        with open_read_only(url) as store:
            (plugin,) = store.stream_ids("plugin:")
            (failed,) = store.projections.plan_runs.list(status="failed")
            server = ConsoleServer(store, port=0)
            server.start()
            try:
                base = f"http://127.0.0.1:{server.port}"
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                    page = browser.new_page(viewport={"width": 1100, "height": 760})
                    page.goto(base + "/")
                    page.click("#verify")
                    page.wait_for_selector("#verify-result.ok")
                    page.screenshot(path=str(out / "console-overview.png"), full_page=True)
                    page.goto(f"{base}/streams/{plugin}")
                    page.screenshot(path=str(out / "console-plugin.png"))
                    page.goto(f"{base}/streams/plan:{failed['plan_id']}")
                    page.screenshot(path=str(out / "console-plan.png"))
                    page.goto(f"{base}/streams/{plugin}/at/3")
                    page.screenshot(path=str(out / "console-state.png"))
                    browser.close()
            finally:
                server.stop()
    print(f"wrote console-overview.png, console-plugin.png, console-plan.png and console-state.png in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "docs")
