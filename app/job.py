"""A job of the app's queue (:mod:`app.jobs`): its runs' configs, labels, folders and histories, and what its
status text asks of it (which runs step together, the time left)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from minsnr_core.grouped import step_groups, why_not_grouped
from minsnr_core.recorder import RunHistory
from minsnr_core.training import FINAL_KINDS, TrainConfig


@dataclass
class Job:
    id: str  # random: a restarted server never hands out an earlier server's folder names
    owner: str
    kind: str  # "train" or "compare": which tab shows it
    configs: list[TrainConfig]
    labels: list[str]
    run_dirs: list[Path]
    resume: Path | None = None
    histories: list[RunHistory] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    address: str = ""  # the client's network address, for the per-address cap
    status: str = "queued"  # queued → running → done | stopped | error
    message: str = ""
    current: int = 0
    started: float | None = None
    ended: float | None = None
    downloads: list[str] | None = None
    start_step: int = 0  # the step its first run starts from (a continued run's earlier steps)
    batched: bool = False  # a comparison whose runs that share a model take one batched step (--batched-compare)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_KINDS  # a job's final statuses are its runs' final event kinds

    @property
    def side_by_side(self) -> bool:
        """Whether its runs train together (a comparison) rather than one after the other."""
        return self.kind == "compare" and self.resume is None

    def alone_reasons(self) -> list[str]:
        """Per run, why it takes steps of its own in a batched comparison: no run to share a step with, or its
        group's other runs ended at earlier steps. "" for a run that shares a batched step (or is finishing the last
        one it shared), and for every run of a comparison that takes its steps in turn."""
        if not self.batched:
            return [""] * len(self.configs)
        reasons = why_not_grouped(self.configs)
        for group in step_groups(self.configs):
            alone = self._left_alone(group)
            if alone is not None:
                reasons[alone] = "the other runs of its batched step have ended"
        return reasons

    def stepping_together(self) -> bool:
        """Whether some of its runs share a batched step: while they train, a group with two runs still going (or
        one finishing the step it shared last); once every run has ended, as configured."""
        groups = step_groups(self.configs) if self.batched else []
        if self.finished or all(history.ended for history in self.histories):
            return bool(groups)
        return any(self._left_alone(group) is None and not all(self.histories[i].ended for i in group)
                   for group in groups)

    def _left_alone(self, group: list[int]) -> int | None:
        """The run of a batched ``group`` that steps on alone: the only one still going, past the steps at which the
        others ended (at the step they ended together it is finishing their shared step, not stepping alone)."""
        live = [index for index in group if not self.histories[index].ended]
        if len(live) != 1:
            return None
        step = self.histories[live[0]].step
        return live[0] if all(self.histories[index].step < step for index in group if index != live[0]) else None

    def remaining_s(self) -> float | None:
        """Expected time left: the running run's ETA, else the time budget; None when unknown. Runs side by side
        share the machine, so the times left of runs taking their own steps add up; the runs of one batched step
        train at once, and each such group adds its longest."""
        if self.finished:
            return 0.0
        if self.side_by_side and self.status == "running":
            left = [0.0 if h.ended else h.eta_s if h.eta_s is not None
                    else c.minutes * 60 if c.minutes else None for h, c in zip(self.histories, self.configs, strict=True)]
            if None in left:
                return None
            groups = step_groups(self.configs) if self.batched else []
            grouped = {index for group in groups for index in group}
            return (sum(seconds for index, seconds in enumerate(left) if index not in grouped)
                    + sum(max(left[index] for index in group) for group in groups))
        history = self.histories[self.current]
        if self.status == "running" and history.eta_s is not None:
            later = self.configs[self.current + 1:]
            if not all(c.minutes for c in later):
                return None  # a later run with a step budget: its time is unknown until it runs
            return history.eta_s + sum(c.minutes * 60 for c in later)
        if all(c.minutes for c in self.configs):
            return sum(c.minutes * 60 for c in self.configs)
        return None
