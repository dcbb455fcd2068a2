"""Several runs trained together in one process, a stretch of each in turn (the Compare tab): every run's curves grow
at once, and each run computes what :func:`minsnr_core.training.train` computes for it alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import torch

from .config import TrainConfig, resolve_device
from .data import load_dataset, load_labels
from .steps import place_data, training_memory_format
from .training import TrainEvent, train


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


def train_side_by_side(configs: list[TrainConfig], stop: threading.Event | None = None) -> Iterator[tuple[int, TrainEvent]]:
    """Train several runs together in one process, a stretch of each in turn, and yield ``(index, event)``: every
    run's curves grow at once (the Compare tab) instead of one run after the other.

    Each run is :func:`train` of its config, with its own model, optimizer, EMA and seeded generator, so it computes
    what it would compute alone (on the CPU the same numbers, tested). The runs take turns one event at a time, so
    runs with the same intervals stay within one log interval of each other. Each budget counts the run's own time
    (:class:`_ArmClock`): m minutes give every run m minutes of its own training, as one after the other would.
    Runs that read the same data (dataset, folder, image size, toy size and seed) on the same device share one copy
    of it. A run that fails ends alone with an error event (a diverged loss, or an exception, named by its type);
    the others go on. ``stop`` stops every run."""
    configs = [config.resolved() for config in configs]
    stop = stop or threading.Event()
    shared: dict[tuple, torch.Tensor] = {}
    runs, clocks, last = {}, [_ArmClock() for _ in configs], {}
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
        runs[index] = train(config, stop, data=shared[key], labels=labels, clock=clocks[index])
    del shared  # each run holds what it uses: a run that ends frees what no other run shares
    try:
        while runs:
            for index in list(runs):
                clocks[index].resume()
                try:
                    event = next(runs[index])
                except StopIteration:
                    del runs[index]
                    continue
                except Exception as error:  # noqa: BLE001 - this run ends; the others go on
                    del runs[index]
                    previous = last.get(index)
                    event = TrainEvent("error", previous.step if previous else 0, clocks[index]() - clocks[index].began,
                                       previous.total_steps if previous else configs[index].steps,
                                       message=f"{type(error).__name__}: {error}")
                finally:
                    clocks[index].suspend()
                last[index] = event
                yield index, event
    finally:
        for run in runs.values():  # the consumer stopped early: end the others' generators
            run.close()
