"""The guided tour: the paper's story in six steps, each a short text, a button that sets the explorer's (or the Train
tab's) controls, and a question whose answer opens on a click.

The steps are data (:data:`STEPS`). A step's settings are link parameters, read with the link's own parsers
(app/urlstate.py), so a step sets exactly what a link with the same query would. A teacher links to a step with
``?tour=N`` (it opens the Tour tab at step N) and to a tab with ``?tab=<id>``. Step 6's numbers are copied from
docs/results.md, section 1 (tests/test_tour.py checks that each number is there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from . import urlstate as us


@dataclass(frozen=True)
class Step:
    """One step: its ``title`` and ``text`` (Markdown), the link parameters its button sets (``settings``: the
    explorer's fields by their link names, the Train tab's as ``train_<name>``), the tab the button opens, the
    button's label (``action``), and a ``question`` with its ``answer``."""

    title: str
    text: str
    action: str
    tab: str
    question: str
    answer: str
    settings: Mapping[str, str] = field(default_factory=dict)


STEPS: tuple[Step, ...] = (
    Step(
        "Why weight the loss?",
        "A diffusion model learns to remove noise at every noise level at once, from nearly clean images (small t) to "
        "almost pure noise (large t). Each level is its own task, and the loss adds them up: the **loss weighting** "
        "decides how much each one counts. The plain ε loss of DDPM puts weight 1 on every step's noise error, which "
        "looks even-handed; read on the error of the clean image x₀ it weights each step by its SNR, so the nearly "
        "clean, easy steps count far more than the noisy ones. Hang et al. (ICCV 2023) treat the levels as tasks "
        "whose gradients conflict, and this imbalance as what slows training down.",
        "Show the plain ε loss on the x₀ error", "explorer",
        "In this view, which timesteps does the plain ε loss weight most, and by how much more than the last one?",
        "The nearly clean ones near t = 0. Their weight is their SNR: about 2.4·10⁴ at t = 0 on the cosine schedule, "
        "against about 2.4·10⁻⁹ at t = 999, 13 orders of magnitude apart. Constant (x0), the plain x₀ loss, weights "
        "every step the same.",
        {"strategies": "snr,constant", "target": "x0"},
    ),
    Step(
        "SNR and schedules",
        "The noise schedule decides how fast the signal-to-noise ratio SNR = α²/σ² falls from the clean end (t = 0) "
        "to pure noise (t = T). A weighting is a function of the SNR alone, so the schedule moves each weight curve "
        "along the timesteps. This view starts on DDPM's linear schedule: switch to Cosine and back, then set the "
        "x-axis to log-SNR λ and switch again.",
        "Show the linear schedule", "explorer",
        "Why do the curves stop moving when the x-axis is log-SNR λ and you switch the schedule?",
        "Because each weight depends on the SNR only: against λ = log SNR every schedule draws the same curve, each "
        "over its own range of λ (the cosine schedule reaches a lower SNR at t = T than the linear one). The schedule "
        "only decides which SNRs the timesteps visit, and so where along t a weighting's shape falls.",
        {"schedule": "linear", "strategies": "snr,min_snr", "target": "x0"},
    ),
    Step(
        "One weight in three spaces",
        "The network can predict the noise ε, the clean image x₀ or the velocity v. For the same prediction their "
        "errors differ by a factor at each step: ‖ε − ε̂‖² = SNR·‖x₀ − x̂₀‖² and ‖v − v̂‖² = (SNR + 1)·‖x₀ − x̂₀‖². "
        "So a weighting w written on the x₀ error is w/SNR on the ε error and w/(SNR + 1) on the v error: the same "
        "training objective, drawn in another space.",
        "Show four weightings in ε space", "explorer",
        "Switch the prediction target between ε, x₀ and v. Which curve is flat at 1 in each space, and does the order "
        "of the curves at a given t change?",
        "The plain loss of that space is flat: SNR (= plain ε-MSE) in ε space, Constant (x0) in x₀ space, SNR + 1 "
        "(= plain v-MSE) in v space. The order does not change: at each t every curve is divided by the same factor.",
        {"strategies": "snr,constant,snr_plus_one,min_snr", "target": "eps"},
    ),
    Step(
        "The clamp and γ",
        "Min-SNR-γ takes the plain ε loss's weight on the x₀ error, the SNR, and clamps it: w = min(SNR, γ). Where "
        "SNR > γ (the shaded band: the nearly clean steps) the weight is held at γ; everywhere else it is the plain ε "
        "loss. Soft-Min-SNR-γ blends the two smoothly, without the kink. The app starts at γ = 5, the value of our "
        "measured runs: drag it.",
        "Show Min-SNR-γ against the plain ε loss", "explorer",
        "Drag γ from 1 to 20. What happens to the shaded band, and to Min-SNR-γ's weight inside it (in ε space)?",
        "The band is where SNR > γ: a larger γ shrinks it towards t = 0, a smaller one widens it. Inside the band "
        "Min-SNR-γ's ε-space weight is γ/SNR, below the plain loss's 1, so the easy steps count less; outside it the "
        "two curves are the same.",
        {"strategies": "snr,min_snr,soft_min_snr", "target": "eps", "gamma": "5"},
    ),
    Step(
        "Train and compare",
        "Now train. The button opens the Train tab on a 2D toy (two moons) with Min-SNR-5 and the ε target, which "
        "trains in seconds on a CPU: press **Start** and watch the loss per noise level, the nearly clean steps (blue) "
        "against the noisy ones (red). The Compare tab then trains two to four weightings side by side, with "
        "the same seed, data, model and budget.",
        "Set up the Train tab", "train",
        "Why does the Compare tab train every weighting with the same seed?",
        "Runs with the same seed share their initialisation, batches and noise, so they start alike and differ only "
        "in the weighting. One pair of runs is still one measurement: docs/results.md repeats each comparison over 5 "
        "paired seeds and gives an interval.",
        {"train_weighting": "min_snr", "train_dataset": "moons", "train_target": "eps", "train_gamma": "5"},
    ),
    Step(
        "What we measured",
        "MNIST, 2000 steps per run, 5 paired seeds, Fréchet distance (FD, lower is better) on 1000 samples "
        "(docs/results.md, section 1): Min-SNR-5 against each target's plain loss, with 95 % intervals in brackets.\n\n"
        "- **ε target**: FD 25.7 vs 70.3 at step 2000, ΔFD −44.6 [−67.4, −21.7]; it reached the plain loss's final "
        "FD 1.97× sooner [1.66, 2.33]. Both hold after Holm's correction over the five primary tests (adjusted "
        "p = 0.023 and 0.0019).\n"
        "- **x0 target**: ΔFD −3.9 [−6.8, −1.1] and 1.37× sooner [1.09, 1.74], but Holm-adjusted p = 0.057 for "
        "both: not established, a direction.\n"
        "- **v target**: a difference was not detected (ΔFD +0.0 [−4.4, +4.4]).\n\n"
        "The paper's 3.4× headline was measured for a ViT on ImageNet latents and is not comparable. The Compare "
        "tab's *Measured results* (at its foot) draws these runs.",
        "Open the Compare tab", "compare",
        "Is the x0 speed-up of 1.37× an established result?",
        "No. On its own each of its 95 % intervals rules out no difference ([1.09, 1.74] for the speed-up), but "
        "the report tests five primary comparisons at once, and after Holm's correction the adjusted p of both x0 "
        "tests is 0.057, above 0.05. Read it as a direction; the ε speed-up (adjusted p = 0.0019) holds.",
    ),
)
TOUR_INTRO = ("The paper's story in six short steps. Each step's button sets the explorer (or the Train tab) for you; "
              "each question's answer opens on a click. To link to a step, add `?tour=N` to the page's address.")
STEP_HELP = "Pick a step; the button under each step's text moves on to the next."


def step_markdown(number: int) -> str:
    """Step ``number`` (from 1) as Markdown: its title, text, question (a <details> whose answer opens on a click)
    and a link to it."""
    step = STEPS[number - 1]
    # Blank lines inside <details>: its answer is rendered as Markdown.
    return (f"### Step {number} of {len(STEPS)}: {step.title}\n\n{step.text}\n\n"
            f'<details class="tour-question"><summary>Question: {step.question}</summary>\n\n'
            f"**Answer.** {step.answer}\n\n</details>\n\n[Link to this step](?tour={number})")


def step_values(fields: Sequence[us.Field], number: int) -> list[Any]:
    """The values step ``number`` gives the link fields' controls: read from its settings as a link's query is. A
    group of fields (the explorer's; the Train tab's, ``train_…``) that the step sets is set whole, its other fields
    at their defaults, so the view is the step's; a group it does not set is left as the student has it."""
    settings = STEPS[number - 1].settings
    values, notices = us.read_query(fields, settings)
    if notices:  # the steps are checked by the tests; a bad one must not set a half view
        raise ValueError(f"tour step {number}: {notices}")

    def group(key: str) -> str:
        return "train" if key.startswith("train_") else "explorer"

    touched = {group(key) for key in settings}
    return [value if group(spec.key) in touched else gr.skip() for spec, value in zip(fields, values, strict=True)]


def page_fields(tab_ids: Sequence[str]) -> list[us.Field]:
    """The link parameters that open the page somewhere: ``tab`` (a tab's id) and ``tour`` (a step, from 1)."""
    return [us.Field("tab", "", us.choice(list(tab_ids))),
            us.Field("tour", 0, us.number(1, len(STEPS), integer=True))]


@dataclass
class Tour:
    """The Tour tab's components: the step picker, each step's column, its button and its "next" button."""

    step: gr.Radio
    columns: list[gr.Column]
    actions: list[gr.Button]
    nexts: list[gr.Button]

    def shown(self, number: str) -> list[Any]:
        """Visibility updates for :attr:`columns`: step ``number`` (the picker's value, a text) only."""
        return [gr.update(visible=str(i) == number) for i in range(1, len(self.columns) + 1)]

    def wire(self, tabs: gr.Tabs, fields: Sequence[us.Field], link_inputs: Sequence[gr.components.Component],
             redraw: Callable[..., Any], redraw_inputs: Sequence[gr.components.Component],
             redraw_outputs: Sequence[gr.components.Component]) -> None:
        """The events: picking a step shows it; a step's button sets ``link_inputs`` (the controls of ``fields``)
        and opens its tab, then the explorer is redrawn (``redraw``: its inputs to its outputs) once."""
        no_api = {"api_visibility": "undocumented", "show_progress": "hidden"}
        self.step.change(self.shown, self.step, self.columns, queue=False, **no_api)
        for number, button in enumerate(self.nexts, start=2):
            button.click(lambda n=number: str(n), None, self.step, queue=False, **no_api)
        for number, button in enumerate(self.actions, start=1):
            def apply(n: int = number) -> list[Any]:
                return [*step_values(fields, n), gr.Tabs(selected=STEPS[n - 1].tab)]

            event = button.click(apply, None, [*link_inputs, tabs], queue=False, **no_api)
            if any(not key.startswith("train_") for key in STEPS[number - 1].settings):
                event.then(redraw, list(redraw_inputs), list(redraw_outputs), queue=False, **no_api)

    def link_opener(self, tab_ids: Sequence[str]) -> Callable[..., list[Any]]:
        """The page-load handler for ``?tab=<id>`` and ``?tour=N`` (which opens the Tour tab, unless ``tab`` names
        another). Its inputs: the link notice; its outputs: the tabs, the step picker, the step columns and the
        notice, to which a refused value adds a line."""
        fields = page_fields(tab_ids)
        keys = {f.key for f in fields}

        def open_from_link(notice: str, request: gr.Request) -> list[Any]:
            query = dict(request.query_params) if request is not None else {}
            if not keys & set(query):
                return [gr.skip()] * (3 + len(self.columns))
            (tab, number), notices = us.read_query(fields, query)
            tab = tab or ("tour" if number else "")
            refused = "\n".join(filter(None, [notice or "", *(f"- ⚠️ {n}" for n in notices)]))
            steps = [str(number), *self.shown(str(number))] if number else [gr.skip()] * (1 + len(self.columns))
            return [gr.Tabs(selected=tab) if tab else gr.skip(), *steps, refused if notices else gr.skip()]

        return open_from_link


def build_tour_tab() -> Tour:
    """The Tour tab's content (inside the current Tab): the step picker and one column per step, the first shown."""
    gr.Markdown(TOUR_INTRO, elem_id="tour-intro")
    # Text values: the app's check of every value a client sends takes a choice's name as a text (app/validation.py).
    step = gr.Radio([(f"{number}. {s.title}", str(number)) for number, s in enumerate(STEPS, start=1)], value="1",
                    label="Step", info=STEP_HELP, elem_id="tour-step")
    columns, actions, nexts = [], [], []
    for number, s in enumerate(STEPS, start=1):
        with gr.Column(visible=number == 1, elem_id=f"tour-{number}") as column:
            gr.Markdown(step_markdown(number), elem_id=f"tour-text-{number}")
            with gr.Row():
                actions.append(gr.Button(s.action, variant="primary", elem_id=f"tour-go-{number}"))
                if number < len(STEPS):
                    nexts.append(gr.Button(f"Next: {STEPS[number].title} →", elem_id=f"tour-next-{number}"))
        columns.append(column)
    return Tour(step, columns, actions, nexts)
