"""Screenshots of the console for docs/console.md, taken with the browser the tests use.

Usage: ``python examples/deploy/screenshots.py [OUT_DIR]`` (default ``docs/``). It runs
``phaselog demo`` into a temporary SQLite store, serves it read-only on a free port of
127.0.0.1, and has the system Chromium (``$PHASELOG_CHROMIUM``, else ``chromium`` on PATH)
capture the overview and the demo plugin's page through Playwright.
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
                    browser.close()
            finally:
                server.stop()
    print(f"wrote {out / 'console-overview.png'} and {out / 'console-plugin.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "docs")
