"""Auto-checked exercises: run a learner's function against a reference and explain the verdict.

A notebook defines the exercise and passes everything in; this module knows no concept:

    from course_lib.check import case, check, mistake

    def softmax(x):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

    check(
        softmax,
        reference=lambda x: torch.softmax(x, dim=-1),
        cases=[case(torch.randn(2, 5)), case(torch.tensor([[1e4, 0.0]]), label="large")],
        mistakes=[mistake("softmax without the max shift", "exp(1e4) overflows ...", wrong)],
    )

`check` tries every case in order and prints one verdict: all cases pass; or "not yet" while the
function still raises NotImplementedError (the stub of the student version); or the first case
that fails, with its input, what was expected and what came back, and a hint. When the wrong
result equals what a known mistake produces, the hint names that mistake. It never prints a
solution's code, never shows a traceback for a wrong answer (an exception becomes a verdict that
quotes the learner's own line), and a function that does not return within `timeout` seconds
gets a verdict too.
"""

from __future__ import annotations

import copy
import math
import numbers
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Case:
    """One input to try: positional and keyword arguments, and a label for the verdict."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    label: str = ""


def case(*args: Any, label: str = "", **kwargs: Any) -> Case:
    """A case: `case(torch.randn(3, 4), dim=0, label="columns")`."""
    return Case(args=args, kwargs=kwargs, label=label)


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer, as a function, with what to say when a learner makes it."""

    name: str
    hint: str
    fn: Callable


def mistake(name: str, hint: str, fn: Callable) -> Mistake:
    """`mistake("a mask off by one", "a token must see itself: keep the diagonal", wrong_fn)`."""
    if not callable(fn):
        raise TypeError(f"fn must be callable (a wrong implementation), got {type(fn).__name__}")
    return Mistake(name=name, hint=hint, fn=fn)


@dataclass(frozen=True)
class Verdict:
    """The outcome: status is 'passed', 'not yet', 'wrong' or 'timeout'."""

    status: str
    message: str
    case: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        # check() has printed the message already; a cell ending in check(...) shows it once.
        pass


class _Timeout(BaseException):
    """Raised inside the learner's function when time is up (a BaseException, so that a
    learner's `except Exception` does not swallow it)."""


def _call_with_timeout(fn: Callable, c: Case, timeout: float) -> Any:
    """fn(*c.args, **c.kwargs), interrupted after `timeout` seconds.

    In the main thread on POSIX (a notebook cell, a script) a SIGALRM timer interrupts the
    function itself; elsewhere it runs in a helper thread that is abandoned on time-out.

    A SIGALRM timer someone else set (pytest-timeout, a notebook runner) is kept: if it is due
    while `fn` runs, its own handler gets the alarm then; otherwise it is re-armed afterwards
    with the time it had left (and its repeat interval).
    """
    use_signal = (
        hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if use_signal:
        return _call_with_alarm(fn, c, timeout)
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*c.args, **c.kwargs)
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _Timeout
    if "error" in box:
        raise box["error"]
    return box["value"]


def _deliver(handler: Any, signum: int, frame: Any) -> None:
    """Hand a signal to a handler as the operating system would have."""
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:  # SIGALRM's default action ends the process
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
    # SIG_IGN (or None: a handler not installed from Python): nothing to do


def _call_with_alarm(fn: Callable, c: Case, timeout: float) -> Any:
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)  # (0, 0): none set
    start = time.monotonic()
    outer = {"pending": outer_left > 0}

    def elapsed() -> float:
        return time.monotonic() - start

    def on_alarm(signum, frame):
        if outer["pending"] and outer_left < timeout and elapsed() < timeout:
            # the outer timer's moment came first: re-arm ours for what is left of it, then
            # give the alarm to the handler it belongs to (which may raise, e.g. a test failure)
            outer["pending"] = False
            signal.setitimer(signal.ITIMER_REAL, max(timeout - elapsed(), 1e-6))
            _deliver(previous, signum, frame)
            return
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    first = min(timeout, outer_left) if outer["pending"] else timeout
    signal.setitimer(signal.ITIMER_REAL, first)
    try:
        return fn(*c.args, **c.kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer["pending"]:  # not due yet: the time it had left, less the time fn took
            left = max(outer_left - elapsed(), 1e-6)  # already due: deliver it right away
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
        elif outer_interval > 0:  # delivered during fn, and it repeats
            signal.setitimer(signal.ITIMER_REAL, outer_interval, outer_interval)


# --------------------------------------------------------------------------- describing values


def _num(x: float) -> str:
    if isinstance(x, bool | np.bool_):
        return str(bool(x))
    if isinstance(x, numbers.Integral):
        return str(int(x))
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.4g}"


def describe(value: Any, limit: int = 12) -> str:
    """A short, readable rendering of an input or output (never more than a line or two)."""
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        head = f"tensor of shape {shape}, {str(value.dtype).removeprefix('torch.')}"
        if value.numel() <= limit:
            flat = value.detach().cpu().flatten().tolist()
            return f"{head}: [{', '.join(_num(v) for v in flat)}]"
        if value.is_floating_point() and value.numel():
            v = value.detach().float()
            return f"{head}, values from {_num(v.min().item())} to {_num(v.max().item())}"
        return head
    if isinstance(value, np.ndarray):
        head = f"array of shape {value.shape}, {value.dtype}"
        if value.size <= limit and value.dtype.kind in "biuf":
            return f"{head}: [{', '.join(_num(v) for v in value.flatten().tolist())}]"
        if value.dtype.kind == "f" and value.size:
            return f"{head}, values from {_num(value.min())} to {_num(value.max())}"
        return head
    if isinstance(value, float | np.floating):
        return _num(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_case(c: Case) -> str:
    parts = [describe(a) for a in c.args] + [f"{k}={describe(v)}" for k, v in c.kwargs.items()]
    return "; ".join(parts) or "no arguments"


# --------------------------------------------------------------------------- comparing results


def compare(got: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """None when `got` matches `expected` within the tolerances, else what differs (one line)."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if got.shape != expected.shape:
            return f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if got.dtype != expected.dtype:
            e, g = (str(t).removeprefix("torch.") for t in (expected.dtype, got.dtype))
            return f"expected dtype {e}, got {g}"
        g, e = got.detach().cpu(), expected.detach().cpu()
        if e.is_floating_point() or e.is_complex():
            bad_g, bad_e = ~torch.isfinite(g), ~torch.isfinite(e)
            if (bad_g & ~bad_e).any():
                idx = tuple(torch.nonzero(bad_g & ~bad_e)[0].tolist())
                return f"at index {idx} expected {_num(e[idx].item())}, got {_num(g[idx].item())}"
            close = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        else:
            close = g == e
        if not close.all() and e.dim() == 0:
            return f"expected {_num(e.item())}, got {_num(g.item())}"
        if not close.all():
            idx = tuple(torch.nonzero(~close)[0].tolist())
            n_bad = int((~close).sum())
            return (
                f"at index {idx} expected {_num(e[idx].item())}, got {_num(g[idx].item())} "
                f"({n_bad} of {e.numel()} values differ)"
            )
        return None
    if isinstance(expected, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"expected a NumPy array, got {describe(got)}"
        if got.shape != expected.shape:
            return f"expected shape {expected.shape}, got {got.shape}"
        if got.dtype != expected.dtype:
            return f"expected dtype {expected.dtype}, got {got.dtype}"
        if expected.dtype.kind in "biufc":  # numbers: compared element-wise, as tensors are
            as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
            return compare(as_tensor(got), as_tensor(expected), rtol, atol)
        if np.array_equal(got, expected):
            return None
        return f"expected {describe(expected)}, got {describe(got)}"
    if isinstance(expected, tuple | list):
        if not isinstance(got, tuple | list) or len(got) != len(expected):
            return f"expected a {type(expected).__name__} of {len(expected)}, got {describe(got)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            diff = compare(g, e, rtol, atol)
            if diff:
                return f"item {i}: {diff}"
        return None
    floats = float | np.floating
    if isinstance(expected, floats) or (_is_integer(expected) and isinstance(got, floats)):
        # a float on either side (Python or NumPy): compared with the tolerances
        if not _is_number(got):
            return f"expected a number, got {describe(got)}"
        if math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=atol):
            return None
        return f"expected {_num(expected)}, got {_num(got)}"
    if isinstance(got, np.ndarray):
        return f"expected {describe(expected)}, got {describe(got)}"
    try:
        same = bool(got == expected)
    except Exception:  # e.g. a tensor of many values against a number: not equal
        same = False
    if same:
        return None
    return f"expected {describe(expected)}, got {describe(got)}"


def _is_number(x: Any) -> bool:
    """A real number, Python or NumPy (np.float32, np.int64, ...); not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)


def _is_integer(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool | np.bool_)


def _generic_hint(diff: str, got: Any) -> str:
    while diff.startswith("item ") and isinstance(got, tuple | list):  # "item 0: ...": that item
        head, _, diff = diff.partition(": ")
        got = got[int(head.split()[1])]
    if diff.startswith("expected shape"):
        return "the result has the wrong shape: check which dimension you reduce or index over"
    if diff.startswith("expected dtype"):
        return "the result has the wrong dtype: keep the input's dtype (no .double() or .int())"
    if isinstance(got, torch.Tensor) and got.is_floating_point() and not torch.isfinite(got).all():
        return "the result holds inf or nan: something overflowed or divided by zero"
    if diff.startswith("expected a torch.Tensor"):
        return "return a tensor, not a Python value"
    if diff.startswith("expected a number") and isinstance(got, torch.Tensor):
        return "return a Python number: .item() turns a one-element tensor into one"
    return "work this case through by hand and compare with each step of your code"


def _learner_line(fn: Callable, error: BaseException) -> str:
    """The learner's own line that raised, e.g. ' (line 3: `x[5]`)', or ''."""
    code = getattr(fn, "__code__", None)
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        if code is not None and frame.filename == code.co_filename and frame.name == code.co_name:
            line = (frame.line or "").strip()
            where = frame.lineno - code.co_firstlineno + 1
            return f" (line {where} of {code.co_name}: `{line}`)" if line else ""
    return ""


def _copy_args(c: Case) -> Case:
    return Case(copy.deepcopy(c.args), copy.deepcopy(c.kwargs), c.label)


def _changed_input(before: Case, after: Case) -> str | None:
    """Which argument the learner's function changed in place ("argument 1",
    "keyword argument 'out'"), or None."""
    for i, (b, a) in enumerate(zip(before.args, after.args, strict=True)):
        if compare(a, b, rtol=0, atol=0) is not None:
            return f"argument {i + 1}"
    for key, b in before.kwargs.items():
        if compare(after.kwargs[key], b, rtol=0, atol=0) is not None:
            return f"keyword argument {key!r}"
    return None


def check(
    fn: Callable,
    reference: Callable,
    cases: Sequence[Case],
    *,
    mistakes: Sequence[Mistake] = (),
    name: str | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    timeout: float = DEFAULT_TIMEOUT_S,
    quiet: bool = False,
) -> Verdict:
    """Run `fn` on every case, compare with `reference`, print and return the verdict."""
    if not callable(fn):
        raise TypeError(f"fn must be the function to check, got {type(fn).__name__}")
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    cases = list(cases)
    if not cases or not all(isinstance(c, Case) for c in cases):
        raise ValueError("cases must be a non-empty list of check.case(...) values")
    if not all(isinstance(m, Mistake) for m in mistakes):
        raise TypeError("mistakes must be check.mistake(...) values")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"timeout must be a positive number of seconds, got {type(timeout).__name__} "
            f"{timeout!r}"
        )
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    title = name or getattr(fn, "__name__", "your function")
    verdict = _run(fn, reference, cases, mistakes, title, rtol, atol, timeout)
    if not quiet:
        print(verdict.message)
    return verdict


def _run(fn, reference, cases, mistakes, title, rtol, atol, timeout) -> Verdict:
    n = len(cases)
    for i, c in enumerate(cases):
        label = c.label or f"case {i + 1}"
        where = f"{title}: {i} of {n} cases pass; case '{label}' does not."
        shown = f"  input:    {describe_case(c)}"
        expected = reference(*_copy_args(c).args, **_copy_args(c).kwargs)
        mine = _copy_args(c)
        try:
            got = _call_with_timeout(fn, mine, timeout)
        except NotImplementedError:
            return Verdict(
                "not yet",
                f"{title}: not yet. Your code still raises NotImplementedError; replace "
                "each such line with your code and run its cell, then this one.",
                label,
            )
        except _Timeout:
            return Verdict(
                "timeout",
                f"{where}\n{shown}\n  {title} did not return within {timeout:g} s.\n"
                "  hint: look for a loop that never ends.",
                label,
            )
        except Exception as e:  # a wrong answer, reported as a verdict, not a traceback
            return Verdict(
                "wrong",
                f"{where}\n{shown}\n  {title} raised {type(e).__name__}: {e}"
                f"{_learner_line(fn, e)}\n"
                "  hint: run it on this input yourself and read the error.",
                label,
            )
        diff = compare(got, expected, rtol, atol)
        changed = _changed_input(_copy_args(c), mine) if diff is None else None
        if changed:
            diff, hint = (
                f"the input was changed in place ({changed})",
                "do not modify the arguments (no x -= ..., no x[...] = ...): work on a copy",
            )
        elif diff is not None:
            hint = _generic_hint(diff, got)
            for m in mistakes:
                try:
                    wrong = m.fn(*_copy_args(c).args, **_copy_args(c).kwargs)
                except Exception:
                    continue
                if compare(got, wrong, rtol, atol) is None:
                    hint = f"this looks like {m.name}: {m.hint}"
                    break
        if diff is not None:
            return Verdict(
                "wrong",
                f"{where}\n{shown}\n  expected: {describe(expected)}\n  got:      {describe(got)}\n"
                f"  {diff}\n  hint: {hint}",
                label,
            )
    return Verdict("passed", f"{title}: all {n} cases pass. Well done!")
