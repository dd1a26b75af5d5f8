"""Drives the dashboard in a real headless Chromium against a running server.

Usage: dashboard.py BASE_URL TOKEN SHOTS_DIR LISTED_PORT UNLISTED_PORT

Run by tests/dashboard.rs, which starts the server (with WORKERPOOL_API_TOKEN=TOKEN, demo
types `work` and `held`, and `cors_origins = ["http://localhost:LISTED_PORT"]`). The script
serves a page calling the API on http://localhost:LISTED_PORT and on
http://127.0.0.1:UNLISTED_PORT. Every wait is bounded; a failed step saves a screenshot and
exits 1.
"""

import http.client
import http.server
import json
import os
import threading
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE, TOKEN, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
# The server's WORKERPOOL_READ_TOKEN (tests/dashboard.rs sets it): reads only.
READ_TOKEN = os.environ["WORKERPOOL_TEST_READ_TOKEN"]
LISTED_PORT, UNLISTED_PORT = int(sys.argv[4]), int(sys.argv[5])
WAIT_S = 30


def api(method, path, body=None, token=TOKEN):
    req = urllib.request.Request(BASE + path, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data, timeout=30) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


CORS_PAGE = """<!doctype html><meta charset="utf-8"><title>another origin</title><p id="result">waiting</p>
<script>
const api = %(api)s, auth = { Authorization: "Bearer " + %(token)s };
const out = (text) => (document.getElementById("result").textContent = text);
fetch(api + "/api/workers/stats", { headers: auth })
  .then((r) => r.json())
  .then(() => fetch(api + "/api/workers/execute", { method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, auth),
    body: JSON.stringify({ type: "work", data: { op: "echo" }, options: { wait: false } }) }))
  .then((r) => r.json())
  .then(({ id }) => {
    // Left open on purpose: after the result the server ends the stream, the browser
    // reconnects with Last-Event-ID, gets 204 and stops, having had the result once.
    const events = new EventSource(api + "/api/tasks/" + id + "/events");
    let results = 0, status = null;
    events.addEventListener("result", (e) => { results++; status = JSON.parse(e.data).status; });
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) out(results ? `ok ${status} results=${results}` : "error: closed before a result");
    };
  })
  .catch((e) => out("error " + e));
</script>"""


def serve_page(host, port):
    """Serves the CORS page on another origin, in a thread."""
    body = (CORS_PAGE % {"api": json.dumps(BASE), "token": json.dumps(TOKEN)}).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fill_queue(n):
    """Queues `n` delayed tasks of `held` over one kept-alive connection."""
    host, port = BASE.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"type": "held", "data": {"op": "echo"}, "options": {"wait": False, "delay": 600000}})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    for _ in range(n):
        conn.request("POST", "/api/workers/execute", body, headers)
        res = conn.getresponse()
        res.read()
        assert res.status == 202, res.status
    conn.close()


def browser(width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("WORKERPOOL_TEST_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    service = Service(executable_path=os.environ.get("WORKERPOOL_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


class Steps:
    def __init__(self, driver):
        self.driver = driver
        self.step = "start"

    def shot(self, name):
        path = os.path.join(SHOTS, f"{name}.png")
        self.driver.save_screenshot(path)
        print(f"screenshot {path}")

    def until(self, what, cond, timeout=WAIT_S):
        try:
            wait = WebDriverWait(self.driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
            return wait.until(lambda d: cond(d))
        except TimeoutException:
            self.shot(f"failed-{self.step}")
            logs = self.driver.get_log("browser") if hasattr(self.driver, "get_log") else []
            raise AssertionError(f"{self.step}: {what} (not within {timeout} s); console: {logs}")

    def css(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector):
        found = self.css(selector)
        return found[0].text if found else ""

    def click(self, selector, what):
        """Clicks the element `selector` names, found afresh: the page redraws as events arrive."""
        def press(_):
            found = self.css(selector)
            if not found:
                return False
            found[0].click()
            return True
        self.until(f"{what} can be clicked", press)

    def go(self, hash_):
        self.driver.get(f"{BASE}/{hash_}")


def figure(s, name):
    """The number of an overview figure card (e.g. Completed), read in one go: the page
    redraws its tables as events arrive."""
    return s.driver.execute_script(
        "for (const c of document.querySelectorAll('.figure'))"
        "  if (c.querySelector('.muted').textContent === arguments[0]) return c.querySelector('.n').textContent;"
        "return '';", name)


def workers_of(s, type_name):
    """The ids of the workers of a type in the workers table."""
    return s.driver.execute_script(
        "return [...document.querySelectorAll('main table tbody tr')]"
        "  .map((r) => [...r.cells].map((c) => c.textContent))"
        "  .filter((c) => c.length > 3 && c[1] === arguments[0] && /-\\d+$/.test(c[0])).map((c) => c[0]);", type_name)


def enter_token(s, value):
    dialog = s.until("the token dialog opens", lambda d: s.css("dialog[open] #token-input"))
    dialog[0].clear()
    dialog[0].send_keys(value)
    s.click("#token-ok", "the dialog's ok")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    for old in os.listdir(SHOTS):
        if old.endswith(".png") and old != "script.out":
            os.remove(os.path.join(SHOTS, old))
    d = browser(1280, 800)
    s = Steps(d)
    try:
        s.step = "load"
        s.go("")
        s.until("the types table lists `work`", lambda _: any(a.text == "work" for a in s.css("main table a")))
        s.until("the live stream connects", lambda _: s.text("#live") == "live")
        s.until("the health verdict shows", lambda _: s.text("#health") in ("healthy", "degraded"))
        s.shot("overview")

        s.step = "tasks appear and finish"
        before = int(figure(s, "Completed") or 0)
        ids = []
        for _ in range(3):
            code, body = api("POST", "/api/workers/execute", {"type": "work", "data": {"op": "sleep", "ms": 1500}, "options": {"wait": False}})
            assert code == 202, (code, body)
            ids.append(body["id"])
        s.until("a submitted task shows as running on a worker",
                lambda _: any(a.get_attribute("href").endswith(i) for a in s.css("main table a[href^='#/task/']") for i in ids))
        s.shot("running")
        s.until("the three tasks are counted completed", lambda _: int(figure(s, "Completed") or 0) >= before + 3)

        s.step = "progress bar"
        code, body = api("POST", "/api/workers/execute", {"type": "work", "data": {"op": "progress", "steps": 8, "step_ms": 400}, "options": {"wait": False}})
        assert code == 202, (code, body)
        task = body["id"]
        s.go(f"#/task/{task}")
        bar = lambda: int(s.css(".progress")[0].get_attribute("aria-valuenow")) if s.css(".progress") else -1
        s.until("the progress bar moves past 0", lambda _: 0 < bar() < 100)
        seen = bar()
        s.until("the progress bar moves on", lambda _: bar() > seen)
        s.shot("progress")
        s.until("the task completes with its result", lambda _: "completed" in s.text("main .badge") and s.css("#task-result"))
        assert bar() == 100, bar()
        assert "8/8" in s.text("#task-stage") or "100%" in s.text("#task-stage"), s.text("#task-stage")
        s.shot("task")

        s.step = "scale up asks for the token once and the worker appears"
        s.go("")
        s.until("the overview shows", lambda _: s.css("[data-scale-up='work']"))
        count = len(workers_of(s, "work"))
        s.click("[data-scale-up='work']", "scale up")
        enter_token(s, TOKEN)
        s.until("the page says the action was done", lambda _: "done" in s.text("#banner"))
        s.until("a new `work` worker is listed", lambda _: len(workers_of(s, "work")) > count)
        kept = d.execute_script("return sessionStorage.getItem('workerpool.token')")
        assert kept == TOKEN, "the token is kept for the tab"
        s.click("[data-scale-up='work']", "scale up")
        s.until("a second scale-up needs no prompt", lambda _: len(workers_of(s, "work")) > count + 1)
        assert not s.css("dialog[open]"), "no prompt with a good token"
        s.shot("scaled")

        s.step = "a wrong token is refused, plainly"
        d.execute_script("sessionStorage.setItem('workerpool.token', 'wrong-token')")
        s.click("[data-scale-down='work']", "scale down")
        dialog = s.until("the page asks again for the token", lambda _: s.css("dialog[open]"))
        assert "refused" in s.text("#token-why"), s.text("#token-why")
        s.click("dialog[open] button[value='cancel']", "the dialog's cancel")
        s.until("the refusal is shown", lambda _: "refused (HTTP 401)" in s.text("#banner"))
        assert "bearer token" in s.text("#banner"), s.text("#banner")
        s.shot("refused")

        s.step = "the read token is refused an action with a 403 that says why, and no prompt"
        d.execute_script(f"sessionStorage.setItem('workerpool.token', {json.dumps(READ_TOKEN)})")
        s.click("[data-scale-down='work']", "scale down")
        s.until("the 403 is shown", lambda _: "refused (HTTP 403)" in s.text("#banner"))
        assert "reads only" in s.text("#banner"), s.text("#banner")
        assert not s.css("dialog[open]"), "a 403 does not ask for the token by itself"
        assert "Use the API token" in s.text("#banner"), s.text("#banner")
        s.shot("read-token")
        d.execute_script(f"sessionStorage.setItem('workerpool.token', {json.dumps(TOKEN)})")

        s.step = "re-queue a dead letter"
        code, body = api("POST", "/api/workers/execute", {"type": "work", "data": {"op": "fail", "retryable": True}, "options": {"max_retries": 0}})
        assert body["status"] == "dead", (code, body)
        dead = body["id"]
        ended = body["finished_at"]
        s.go("#/type/work")
        s.until("the dead letter is listed with a re-queue button", lambda _: s.css(f"[data-requeue='{dead}']"))
        s.shot("dead-letters")
        s.click(f"[data-requeue='{dead}']", "re-queue")
        s.until("the re-queue is done", lambda _: "Re-queue" in s.text("#banner") and "done" in s.text("#banner"))
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            code, rec = api("GET", f"/api/tasks/{dead}")
            if rec.get("started_at") and rec["started_at"] > ended:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the re-queued task did not run again: {rec}")

        s.step = "a queue of 10,000 tasks, a page at a time"
        fill_queue(10000)
        s.go("#/type/held")
        s.until("the type page counts the whole queue", lambda _: "Queue (10000)" in s.text("main"))
        rows = lambda: d.execute_script("return document.querySelectorAll('main tr').length")
        s.until("the first page lists 50 tasks", lambda _: "1–50 of 10000" in s.text(".pager"))
        assert rows() < 120, f"the page rendered {rows()} rows"
        s.shot("queue-10000")
        s.click(".pager button:last-child", "next page")
        s.until("the second page", lambda _: "51–100 of 10000" in s.text(".pager"))
        first = d.execute_script("return document.querySelector('main table tbody tr td').textContent")
        assert first == "51", first
        code, body = api("GET", "/api/workers/queues/held?offset=9990&limit=50")
        assert (code, len(body["tasks"]), body["length"]) == (200, 10, 10000), (code, body)

        s.step = "a phone-sized window"
        d.set_window_size(390, 844)
        s.go("")
        s.until("the overview shows on a phone", lambda _: s.css("main table"))
        width = d.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, f"the page scrolls sideways on a phone: {width}px"
        s.shot("phone")
        d.set_window_size(1280, 800)

        s.step = "keyboard"
        s.go("")
        s.until("the overview shows", lambda _: s.css("[data-scale-up='work']"))
        d.execute_script("document.activeElement.blur()")
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.common.action_chains import ActionChains
        reached = set()
        for _ in range(60):
            ActionChains(d).send_keys(Keys.TAB).perform()
            # Read in the page in one step: a live update may replace the element meanwhile.
            reached.add(d.execute_script(
                "const e = document.activeElement;"
                "return e && (e.getAttribute('data-scale-up') || e.getAttribute('href') || e.textContent)"))
            if "work" in reached:
                break
        assert "work" in reached, f"scale up is not reachable by Tab: {sorted(map(str, reached))[:20]}"

        s.step = "a page on another origin calls the API"
        pages = [serve_page("127.0.0.1", LISTED_PORT), serve_page("127.0.0.1", UNLISTED_PORT)]
        d.get(f"http://localhost:{LISTED_PORT}/")
        s.until("the listed origin's page ran a task and read its stream",
                lambda _: s.text("#result").startswith("ok") or s.text("#result").startswith("error"))
        print("cors:", s.text("#result"))
        assert s.text("#result") == "ok completed results=1", s.text("#result")
        d.get(f"http://127.0.0.1:{UNLISTED_PORT}/")
        s.until("the unlisted origin's page is refused", lambda _: s.text("#result").startswith("error"))
        print("cors refused:", s.text("#result"))
        for page in pages:
            page.shutdown()

        print("dashboard: every step passed")
    finally:
        d.quit()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
