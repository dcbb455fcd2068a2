"""The minsnr Gradio app: thin wiring of controls to functions of ``minsnr_core`` and ``app.explorer``."""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

import gradio as gr

from . import urlstate as us
from .a11y import A11Y_HEAD, THEME
from .denoise_ui import build_denoise_tab
from .explorer import default_view, warm_up_explorer
from .explorer_api import explorer_api
from .explorer_js import GAMMA_LOG_CSS
from .explorer_tab import build_explorer_tab, explorer_fields, linked_explorer, update_explorer
from .first_paint import FIRST_PAINT_CSS, early_paint_middleware
from .help import explain_controls
from .jobs import GRACE_S, ClassLimits, JobManager, check_owner
from .memory import release_memory, warm_up
from .phone import PHONE_HEAD, fold_narrow
from .server_files import SESSION_IDLE_S, ServerFiles, expire_idle_sessions
from .settings import source_names, train_link_fields, train_link_settings
from .tour import build_tour_tab
from .training_ui import build_compare_tab, build_train_tab, follow
from .validation import name_refusals

DEFAULT_DATA_ROOT = Path("~/.cache/minsnr/data").expanduser()
FAVICON = str(Path(__file__).with_name("static") / "favicon.png")
MAX_UPLOAD = "1mb"
SESSION_CAPACITY = 2000  # sessions whose state Gradio keeps at most (its default: 10,000 copies of the page's config)

def link_fields(limits: ClassLimits) -> list[us.Field]:
    """Every setting a link can carry: the explorer's, then the Train tab's."""
    return explorer_fields() + train_link_fields(limits)


# The page's own address with the settings' query, shown with a Copy button. Not written to the address bar: each
# history.replaceState made Chromium fetch the whole page again (docs/performance.md).
WRITE_URL_JS = "(query) => window.location.origin + window.location.pathname + (query ? '?' + query : '')"
# Narrow screens (phones): the explorer's chart above its controls.
CSS = ("@media (max-width: 700px) { #explorer-row { flex-direction: column-reverse; } }\n" + GAMMA_LOG_CSS + "\n"
       + FIRST_PAINT_CSS)


# What the title may claim is what docs/results.md measured (section 1: MNIST, 2000 steps, 5 paired seeds).
TITLE = """# minsnr — see what Min-SNR-γ loss weighting does to diffusion training
Measured here on MNIST (2000 steps, 5 paired seeds, Fréchet distance on 1000 samples; docs/results.md, section 1):
Min-SNR-5 reached the plain loss's final Fréchet distance 1.97× sooner with the ε target (95 % interval 1.66–2.33×)
and 1.37× sooner with the x0 target (1.09–1.74×; Holm-adjusted over the five primary tests p = 0.057, so not established);
with the v target a difference was not detected (ΔFD +0.0 [−4.4, +4.4])."""


def link_reader(fields: list[us.Field]):
    """The page-load handler reading these link fields from the address (the page writes them: us.link_writer_js)."""

    def load_from_url(request: gr.Request) -> list[Any]:
        """Initial control values from the page's query parameters; rejected values come back as a notice. A field
        the link does not set is left as the page holds it (its default, or what the student has already typed:
        this answer can arrive after the first input)."""
        query = dict(request.query_params) if request is not None else {}
        values, notices = us.read_query(fields, query)
        values = [value if spec.key in query else gr.skip() for spec, value in zip(fields, values, strict=True)]
        return [*values, "\n".join(f"- ⚠️ {n}" for n in notices)]

    return load_from_url


def build_app(data_roots: list[str] | None = None, image_roots: list[str] | None = None,
              manager: JobManager | None = None, analytics: bool = False) -> gr.Blocks:
    """The whole app. ``data_roots``: folders the datasets are read from (or downloaded to); ``image_roots``:
    the only image folders the browser may train on. ``analytics``: Gradio's usage reports to its makers (off:
    nothing leaves the machine)."""
    data_roots = [str(Path(r).expanduser()) for r in (data_roots or [str(DEFAULT_DATA_ROOT)])]
    folders = source_names(image_roots or [])  # students see each folder's name, never its path
    manager = manager or JobManager()
    # Gradio's copies of downloaded files are deleted an hour after they were made, and at shutdown.
    with gr.Blocks(title="minsnr — Min-SNR-γ loss weighting, seen", delete_cache=(600, 3600),
                   analytics_enabled=analytics) as demo:
        owner = gr.BrowserState("", storage_key="minsnr-owner")
        gr.Markdown(fold_narrow(TITLE, "What we measured (more)"), elem_id="app-title")  # folded on a phone
        url_notice = gr.Markdown(elem_id="url-notice")
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # every tab reachable on a phone, none behind a "⋯" menu
            with gr.Tab("Weight explorer", id="explorer"):
                inputs, notices, plot, explanation, link, words = build_explorer_tab()
            with gr.Tab("Tour", id="tour"):
                tour = build_tour_tab()
            with gr.Tab("Train", id="train"):
                controls, weighting, describe, describe_outputs, train_outputs, train_render = build_train_tab(
                    manager, data_roots, folders, owner)
            with gr.Tab("Compare", id="compare"):
                compare_outputs, compare_render = build_compare_tab(manager, data_roots, folders, owner)
            with gr.Tab("Denoise", id="denoise"):
                build_denoise_tab(manager, owner)
        train_link_inputs = [weighting, *[controls[name] for name in train_link_settings()]]
        link_inputs = [*inputs, *train_link_inputs]
        fields = link_fields(manager.limits)
        load_from_url = link_reader(fields)
        outputs = [plot, explanation, notices, words]
        tour.wire(tabs, fields, link_inputs, update_explorer, inputs, outputs)
        explain_controls(demo, inputs)  # a help line under each control (app/help.py)
        # The page writes every setting into the link itself: no request, and no answer of an older request that
        # could overwrite a newer value.
        query = gr.Textbox(visible=False)
        write_link = us.link_writer_js(fields)
        for component in link_inputs:
            component.change(None, [query, *link_inputs], query, js=write_link)
        query.change(None, query, link, js=WRITE_URL_JS)
        demo.load(load_from_url, None, [*link_inputs, url_notice], api_visibility="undocumented").then(
            tour.link_opener([tab.id for tab in tabs.children]), url_notice, [tabs, tour.step, *tour.columns, url_notice],
            api_visibility="undocumented").then(  # ?tab=<id>, ?tour=N
            linked_explorer, inputs, outputs, api_visibility="undocumented"
        ).then(describe, weighting, describe_outputs, api_visibility="undocumented").then(
            None, [query, *link_inputs], query, js=write_link).then(None, query, link, js=WRITE_URL_JS)
        reattach = _reattach(manager, len(train_outputs), train_render, len(compare_outputs), compare_render)
        demo.load(_owner_for(manager), owner, owner, api_visibility="undocumented").then(
            reattach, owner, [*train_outputs, *compare_outputs], api_visibility="undocumented")
        demo.unload(_detach_from(manager))
        gr.api(explorer_api, api_name="explorer")
    name_refusals(demo)
    return demo


PASSWORD_VARIABLE = "MINSNR_PASSWORD"
LOGIN_MESSAGE = "This minsnr server is for one class: type any name and the class password your teacher gave you."


def class_password(password: str | None):
    """Gradio's login check for a class password (any user name), or None for a server open to all who reach it."""
    if password is None:
        return None

    def check(_username: str, given: str) -> bool:
        return secrets.compare_digest(given.encode(), password.encode())

    return check


def _owner_for(manager: JobManager):
    """The page's owner token: the one its browser kept (a reload after a Wi-Fi blip finds its run again), or a new
    random one. The token, not Gradio's client-chosen session hash, is what owns a run."""

    def on_load(token: str, request: gr.Request) -> str:
        try:
            check_owner(token)
        except ValueError:
            token = secrets.token_urlsafe(24)
        manager.attach(token, request.session_hash)
        return token

    return on_load


def _detach_from(manager: JobManager):
    def on_unload(request: gr.Request) -> None:
        manager.detach(request.session_hash)

    return on_unload


def _reattach(manager: JobManager, train_count: int, train_render, compare_count: int, compare_render):
    """On page load, show the owner's job again (after a reload) in the tab it came from."""

    def on_load(token: str):
        job = manager.job(token) if isinstance(token, str) else None
        if job is None:
            return
        for update in follow(manager, job, train_render if job.kind == "train" else compare_render):
            if job.kind == "train":
                yield *update, *[gr.skip()] * compare_count
            else:
                yield *[gr.skip()] * train_count, *update

    return on_load


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="minsnr-app", description="Start the minsnr Gradio app.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--data-root", action="append", default=None,
                        help=f"folder for MNIST/CIFAR-10, read or downloaded to (repeatable; default {DEFAULT_DATA_ROOT})")
    parser.add_argument("--image-root", action="append", default=None,
                        help="an image folder (class sub-folders) users may train on (repeatable); no other path is read")
    parser.add_argument("--batched-compare", action="store_true",
                        help="Compare: the runs that share a model take one batched step (off by default: on a 2-core "
                             "CPU 2–4 MNIST runs batched measured slower than their steps in turn; see "
                             "docs/performance.md)")
    parser.add_argument("--max-jobs", type=int, default=1, help="training jobs run at once (default 1 per device)")
    parser.add_argument("--runs-dir", default=None, help="where runs are written (default: a temporary folder)")
    defaults = ClassLimits()
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps,
                        help=f"most training steps one run may ask for (default {defaults.max_steps})")
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes,
                        help=f"longest time budget one run may ask for (default {defaults.max_minutes:g})")
    parser.add_argument("--max-runs-per-address", type=int, default=defaults.max_runs_per_address,
                        help="runs one network address may have queued or running (default "
                        f"{defaults.max_runs_per_address}; 0: no cap; raise it for a class behind one NAT address)")
    parser.add_argument("--grace-seconds", type=float, default=GRACE_S,
                        help=f"how long a run outlives its page (a reload within it gets the run back; default {GRACE_S:g})")
    parser.add_argument("--session-idle-seconds", type=float, default=SESSION_IDLE_S,
                        help="how long a session with no open page and no call keeps its state on the server "
                        f"(default {SESSION_IDLE_S:g})")
    parser.add_argument("--password", default=os.environ.get(PASSWORD_VARIABLE),
                        help="a class password: the page asks for it (any user name) before it opens, and every API "
                        f"call needs the login's cookie (default: ${PASSWORD_VARIABLE}, else none: open to all who reach "
                        "the server)")
    parser.add_argument("--analytics", action="store_true",
                        help="let Gradio send its usage reports to its makers (default off: nothing leaves this machine)")
    args = parser.parse_args(argv)
    # Read by Gradio where it decides alone (its start-up's version check, its error reports).
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "True" if args.analytics else "False"
    if args.max_jobs < 1:
        parser.error("--max-jobs must be ≥ 1")
    if args.max_steps < 1 or not 0 < args.max_minutes < float("inf"):
        parser.error("--max-steps must be ≥ 1 and --max-minutes a positive number")
    if not 0 <= args.grace_seconds < float("inf"):
        parser.error("--grace-seconds must be a number ≥ 0")
    if not 1 <= args.session_idle_seconds < float("inf"):
        parser.error("--session-idle-seconds must be a number ≥ 1")
    if args.password is not None and not args.password.strip():
        parser.error("--password must not be empty (leave it out for a server without one)")
    if args.max_runs_per_address < 0:
        parser.error("--max-runs-per-address must be ≥ 0 (0: no cap)")
    limits = ClassLimits(max_steps=args.max_steps, max_minutes=args.max_minutes,
                         max_runs_per_address=args.max_runs_per_address)
    os.umask(0o077)  # every file the server writes (runs, copies, Gradio's cache) is readable by its user only
    try:
        files = ServerFiles(args.runs_dir)  # also removes what a killed server left behind
    except ValueError as error:
        parser.error(str(error))
    # Gradio's cache inside the server's own folder: a clean stop deletes it, the next start a killed one's.
    os.environ["GRADIO_TEMP_DIR"] = str(files.cache)
    warm_up()
    warm_up_explorer()
    manager = JobManager(args.max_jobs, limits=limits, grace_s=args.grace_seconds, files=files,
                         batched_compare=args.batched_compare)
    demo = build_app(args.data_root, args.image_root, manager, analytics=args.analytics)

    def sweep_sessions() -> None:
        while True:  # a sweep at least every 30 s, and twice per idle period when that is shorter
            time.sleep(min(30.0, args.session_idle_seconds / 2))
            if expire_idle_sessions(demo.state_holder, manager.open_sessions(), args.session_idle_seconds):
                release_memory()

    threading.Thread(target=sweep_sessions, daemon=True, name="minsnr-sessions").start()

    def shut_down(*_: object) -> None:
        demo.close()  # Gradio deletes the file copies it served (delete_cache) as its server stops
        manager.close()  # every run folder and download copy the app wrote
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, shut_down)
    atexit.register(manager.close)
    # No folder of runs is served: downloads reach their owner's page as copies under unguessable cache names.
    early_paint = early_paint_middleware(default_view().figure, TITLE, [f.key for f in explorer_fields()])
    # The app has no upload control: Gradio's upload route takes no file larger than MAX_UPLOAD.
    demo.queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port, css=CSS,
                                                   theme=THEME, head=A11Y_HEAD + PHONE_HEAD,  # a11y; the phone layout
                                                   favicon_path=FAVICON, max_file_size=MAX_UPLOAD,
                                                   state_session_capacity=SESSION_CAPACITY,
                                                   auth=class_password(args.password), auth_message=LOGIN_MESSAGE,
                                                   app_kwargs={"middleware": [early_paint]})


if __name__ == "__main__":
    main()
