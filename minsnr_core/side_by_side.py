"""Several runs trained together in one process (the Compare tab and ``minsnr-experiment --group-runs``): every run's
curves grow at once, runs that share a model take their steps in one batched step (:mod:`minsnr_core.grouped`), and
each run computes what :func:`minsnr_core.training.train` computes for it alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import torch

from .config import TrainConfig, resolve_device
from .data import load_dataset, load_labels
from .grouped import GroupedStep, group_key
from .steps import place_data, stepper, training_memory_format
from .training import StepDue, TrainEvent, training_loop


class _ArmClock:
    """One run's time in :func:`train_side_by_side`: the wall clock less the time the run waited while the others
    trained (and while its events were handled)."""

    def __init__(self) -> None:
        self.waited, self.since, self.began = 0.0, None, time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.waited

    def resume(self) -> None:
        if self.since is not None:
            self.waited += time.perf_counter() - self.since

    def suspend(self) -> None:
        self.since = time.perf_counter()


def train_side_by_side(configs: list[TrainConfig], stop: threading.Event | None = None,
                       group: bool = False) -> Iterator[tuple[int, TrainEvent]]:
    """Train several runs together in one process and yield ``(index, event)``: every run's curves grow at once
    (the Compare tab) instead of one run after the other.

    Each run is :func:`~minsnr_core.training.training_loop` of its config, with its own model, optimizer, EMA and
    seeded generator. The runs advance one step at a time, each yielding the events that step brings. With
    ``group``, runs that share a model, data, batch size and device
    (:func:`~minsnr_core.grouped.group_key`) take their steps together, in one batched step
    (:class:`~minsnr_core.grouped.GroupedStep`: the same numbers as alone up to float rounding); the others (and all
    without ``group``, the default) take their own steps in turn, computing on the CPU exactly what they compute
    alone (tested). Not grouping is the default because on the 2-core CPU a batched step of 2–4 MNIST UNets measured
    slower than their steps in turn (docs/performance.md).

    Each budget counts the run's own time (:class:`_ArmClock`): its own steps and reports, and every batched step
    it is part of. So m minutes give each run m minutes of training: runs in turn take N × m minutes, runs in one
    group m minutes together. Runs that read the same data (dataset, folder, image size, toy size and seed) on the
    same device share one copy of it. A run that fails ends alone with an error event (a diverged loss, or an
    exception, named by its type); the others go on, and where the batched pass itself fails (out of memory), its
    runs take their own steps from then on. ``stop`` stops every run."""
    configs = [config.resolved() for config in configs]
    stop = stop or threading.Event()
    shared: dict[tuple, torch.Tensor] = {}
    loops, clocks, last = {}, [_ArmClock() for _ in configs], {}
    for index, config in enumerate(configs):
        device = resolve_device(config.device)
        key = (config.dataset, config.data_root, config.download, config.toy_size, config.seed, config.image_size,
               str(device), str(training_memory_format(config, device)))
        if key not in shared:
            shared[key] = place_data(config, load_dataset(
                config.dataset, config.data_root, download=config.download, toy_size=config.toy_size, seed=config.seed,
                image_size=config.image_size))
        labels = None
        if config.class_conditional:
            if (*key, "labels") not in shared:
                shared[(*key, "labels")] = load_labels(config.dataset, config.data_root).to(device=device, dtype=torch.long)
            labels = shared[(*key, "labels")]
        loops[index] = training_loop(config, stop, data=shared[key], labels=labels, clock=clocks[index])
    del shared  # each run holds what it uses: a run that ends frees what no other run shares
    replies: dict[int, Any] = dict.fromkeys(loops)  # what each loop is sent next: None, a step's result, an error
    steppers: dict[int, Any] = {}
    grouped_steps: dict[tuple, GroupedStep] = {}
    due: dict[int, StepDue] = {}

    disbanded: set[int] = set()  # runs whose batched step failed: they step on their own

    def own_step(index: int) -> Any:
        """The run's own step, or the exception it raised (thrown into its loop, which then ends)."""
        request = due[index]
        steppers[index] = steppers.get(index) or stepper(request.run)
        try:
            return steppers[index](request.batch, request.lr, request.check)
        except Exception as error:  # noqa: BLE001 - this run ends; the others go on
            return error

    def failed(index: int, error: Exception) -> TrainEvent:
        previous = last.get(index)
        return TrainEvent("error", previous.step if previous else 0, clocks[index]() - clocks[index].began,
                          previous.total_steps if previous else configs[index].steps,
                          message=f"{type(error).__name__}: {error}")

    try:
        while loops:
            due.clear()
            for index in list(loops):  # each run to its next step, with the events on the way
                while True:
                    clocks[index].resume()
                    try:
                        item = _advance(loops[index], replies.pop(index, None))
                    except StopIteration:
                        del loops[index]
                        break
                    except Exception as error:  # noqa: BLE001 - this run ends; the others go on
                        del loops[index]
                        item = failed(index, error)
                    finally:
                        clocks[index].suspend()
                    if isinstance(item, StepDue):
                        due[index] = item
                        break
                    last[index] = item
                    yield index, item
                    if index not in loops:
                        break
            for members in _groups(due, group, disbanded):
                for index in members:
                    clocks[index].resume()
                try:
                    results = None
                    if len(members) > 1:
                        key = group_key(due[members[0]].run.config)
                        if key not in grouped_steps:
                            grouped_steps[key] = GroupedStep(due[members[0]].run.model)
                        try:
                            results = grouped_steps[key]([due[i].run for i in members], [due[i].batch for i in members],
                                                         [due[i].lr for i in members], [due[i].check for i in members])
                        except Exception:  # noqa: BLE001 - the batched pass failed before any update (out of memory)
                            disbanded.update(members)  # these runs take their own steps from now on, this one too
                    if results is None:
                        results = [own_step(index) for index in members]
                finally:
                    for index in members:
                        clocks[index].suspend()
                replies.update(zip(members, results, strict=True))
    finally:
        for loop in loops.values():  # the consumer stopped early: end the others' loops
            loop.close()


def _advance(loop: Generator, reply: Any) -> Any:
    """The loop's next item, after sending it ``reply``: nothing, a step's result, or an exception to raise there."""
    if reply is None:
        return next(loop)
    if isinstance(reply, BaseException):
        return loop.throw(reply)
    return loop.send(reply)


def _groups(due: dict[int, StepDue], group: bool, disbanded: set[int]) -> list[list[int]]:
    """The runs due a step, as the lists of runs that step together (a run alone: a list of one)."""
    if not group:
        return [[index] for index in due]
    members: dict[Any, list[int]] = {}
    for index, request in due.items():
        key = None if index in disbanded else group_key(request.run.config)
        members.setdefault(key if key is not None else ("alone", index), []).append(index)
    return list(members.values())
