"""Tuning that cannot hang: MetaSchedule's evolutionary search under wall-clock budgets.

MetaSchedule ends a task only when it has had its trials. A small task whose design space
holds one or two schedules never gets there: every round its search finds nothing new (an
empty or already-measured batch, so its trial count never moves) and the task scheduler asks
again, for as long as anyone waits. `BudgetedSearch` wraps the evolutionary search (through
MetaSchedule's public `PySearchStrategy`) and ends a task, keeping its best schedule, when it
stops producing new candidates or runs out of time; `TuningClock` counts the trials of all
tasks (an ended task counts as done, so the total is reachable), gives an ETA from measured
trial times, and records which tasks were cut and why.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[[str], None]
MODEL_BUDGET = "model tuning budget"


@dataclass(frozen=True)
class TuneBudget:
    """Wall-clock limits that keep tuning from hanging. A task ends (keeping its best
    schedule) when its search has produced no new candidate for `stall_rounds` rounds or
    `stall_s` seconds (a small task whose space is exhausted), or after `task_s` seconds of
    its own search, build and measurement; every task ends once the model has tuned for
    `model_s`. Budgets are checked between search rounds (a round is not interrupted)."""

    model_s: float = 1800.0
    task_s: float = 300.0
    stall_s: float = 120.0
    stall_rounds: int = 2


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@dataclass
class TuningClock:
    """Trials and time across the tasks of one tuning run: what progress shows, and what the
    report says was cut."""

    tasks: int
    trials_per_task: int
    budget: TuneBudget = field(default_factory=TuneBudget)
    task_trials: dict[str, int] = field(default_factory=dict)  # a task's own trials, if not
    # trials_per_task (the int8 lowering's glue policy)
    on_progress: Callable[[TuningClock], None] | None = None
    start: float = field(default_factory=time.monotonic)
    measured: int = 0  # trials measured in this run
    done: int = 0  # trials counted done: measured, plus the rest of every ended task
    tasks_done: int = 0
    cut: dict[str, str] = field(default_factory=dict)  # task -> why it ended early

    @property
    def total(self) -> int:
        return sum(self.task_trials.values()) + (
            self.tasks - len(self.task_trials)) * self.trials_per_task

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def eta_s(self) -> float | None:
        """Seconds left at the measured seconds per trial so far; None until a tenth of the
        trials are measured (the first ones carry the workers' start-up)."""
        if self.measured < max(1, self.total // 10):
            return None
        return self.elapsed / self.measured * max(self.total - self.done, 0)

    def line(self) -> str:
        eta = self.eta_s()
        left = f", ~{_duration(eta)} left" if eta is not None else ""
        return (f"tune {self.tasks_done}/{self.tasks} tasks, {self.done}/{self.total} trials, "
                f"{_duration(self.elapsed)}{left}")

    def over_model_budget(self) -> bool:
        return self.elapsed > self.budget.model_s

    def stopped_by_model_budget(self) -> set[str]:
        return {task for task, why in self.cut.items() if why.startswith(MODEL_BUDGET)}

    def trials(self, n: int) -> None:
        self.measured += n
        self.done += n
        self._notify()

    def ended(self, task: str, measured: int, why: str | None) -> None:
        """A task is done: its unmeasured trials count as done; `why` if it was cut."""
        self.done += max(self.task_trials.get(task, self.trials_per_task) - measured, 0)
        self.tasks_done += 1
        if why:
            self.cut[task] = why
        self._notify()

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self)


def budgeted_search(clock: TuningClock, **evolutionary):
    """A BudgetedSearch for `extracted_tasks_to_tune_contexts(strategy=...)` (each task's
    context clones it)."""
    return _budgeted_search_class()(clock, **evolutionary)


@functools.cache
def _budgeted_search_class() -> type:
    """Defined on first use: TVM is imported only when something is tuned."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy, SearchStrategy

    @derived_object
    class BudgetedSearch(PySearchStrategy):
        """MetaSchedule's evolutionary search for one task, ended early by a TuningClock's
        budget: no new candidate for a while (exhausted), the task's or the model's time."""

        def __init__(self, clock: TuningClock, **evolutionary) -> None:
            self.clock = clock
            self.evolutionary = evolutionary
            self.inner = SearchStrategy.create("evolutionary", **evolutionary)
            self.task = "?"
            self.seen: set[int] = set()
            self.measured = 0
            self.max_trials = 0
            self.spent = 0.0  # seconds in this task's rounds (search, build, measure)
            self.round_start: float | None = None
            self.spent_at_new = 0.0  # `spent` when the search last produced a new candidate
            self.stalled_rounds = 0
            self.finished = False

        def _initialize_with_tune_context(self, context) -> None:
            self.task = str(context.task_name)
            self.inner._initialize_with_tune_context(context)

        def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None,
                       cost_model=None) -> None:
            self.max_trials = int(max_trials)
            self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database,
                                  cost_model)

        def post_tuning(self) -> None:
            self.inner.post_tuning()
            self._end(None)

        def _end(self, why: str | None) -> None:
            if not self.finished:
                self.finished = True
                self.clock.ended(self.task, self.measured, why)

        def _why_stop(self) -> str | None:
            budget = self.clock.budget
            if self.clock.over_model_budget():
                return f"{MODEL_BUDGET} {budget.model_s:g} s reached"
            if self.spent > budget.task_s:
                return f"task budget {budget.task_s:g} s reached"
            if self.stalled_rounds >= budget.stall_rounds:
                return f"no new candidate in {self.stalled_rounds} rounds"
            if self.spent - self.spent_at_new > budget.stall_s:
                return f"no new candidate for {budget.stall_s:g} s"
            return None

        def generate_measure_candidates(self):
            import tvm_ffi

            if self.finished:
                return None
            why = self._why_stop()
            if why is None and self.measured < self.max_trials:
                self.round_start = time.monotonic()
                candidates = self.inner.generate_measure_candidates()
                if candidates is None:  # the search's own end (it found nothing to sample)
                    self._end(None if self.measured >= self.max_trials else
                              f"search space exhausted after {self.measured} of "
                              f"{self.max_trials} trials")
                    return None
                hashes = {int(tvm_ffi.structural_hash(c.sch.mod)) for c in candidates}
                if hashes - self.seen:
                    self.seen |= hashes
                    self.spent_at_new = self.spent
                    self.stalled_rounds = 0
                    return candidates
                self.stalled_rounds += 1
                why = self._why_stop() or ("the search found no unmeasured candidate"
                                           if not candidates else None)
                if why is None:
                    return candidates
            if why is not None:
                why = f"{why} after {self.measured} of {self.max_trials} trials"
            self._end(why)
            return None

        def notify_runner_results(self, measure_candidates, results) -> None:
            self.inner.notify_runner_results(measure_candidates, results)
            self.measured += len(results)
            if self.round_start is not None:
                self.spent += time.monotonic() - self.round_start
                self.round_start = None
            self.clock.trials(len(results))

        def clone(self) -> SearchStrategy:
            return BudgetedSearch(self.clock, **self.evolutionary)

    return BudgetedSearch
