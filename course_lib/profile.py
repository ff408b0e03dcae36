"""Run profiles: one notebook, three sizes, the same code path.

`COURSE_PROFILE` selects how big a notebook runs:

    ci   the smallest sizes that still show the effect; what CI executes (2 CPU cores,
         one intra-op thread, under 60 s per notebook)
    cpu  a laptop or desktop without a GPU; minutes per notebook
    gpu  one CUDA GPU; the full-size runs

Unset, the profile follows the device: `gpu` where `course_lib.device` picks CUDA, else `cpu`.
A notebook states its sizes for all three profiles in one call, so every profile runs the same
cells with different numbers:

    >>> P = profile.activate()
    >>> S = P.sizes(ci=dict(steps=200), cpu=dict(steps=2_000), gpu=dict(steps=20_000))
    >>> S.steps

This module also reads the course map (`course_map.toml` at the root of the clone): per
notebook, its title, seed sections, objectives and measured run time in each profile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from course_lib import device as _device

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROFILES = ("ci", "cpu", "gpu")
THREADS = {"ci": 1, "cpu": None, "gpu": None}
DESCRIPTIONS = {
    "ci": "smallest sizes that still show the effect (what CI runs: 2 CPU cores, 1 thread)",
    "cpu": "a laptop or desktop without a GPU: minutes per notebook",
    "gpu": "one CUDA GPU: the full-size runs",
}
COURSE_MAP = Path(__file__).resolve().parents[1] / "course_map.toml"


class Sizes(Mapping):
    """The sizes of one profile, read as attributes (`S.steps`) or as a mapping (`S["steps"]`)."""

    def __init__(self, profile: str, values: Mapping[str, Any]):
        object.__setattr__(self, "_profile", profile)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, key: str) -> Any:
        # Only called when normal lookup fails. Private and special names are never sizes:
        # copy and pickle probe them on an instance whose `_values` does not exist yet.
        if key.startswith("_"):
            raise AttributeError(f"profile sizes have no attribute {key!r}")
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(
                f"profile sizes have no {key!r}; they have {sorted(self._values)}"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("profile sizes are read-only; change them in the sizes(...) call")

    def __reduce__(self) -> tuple[type, tuple[str, dict[str, Any]]]:
        # copy, deepcopy and pickle rebuild through __init__ (attribute assignment is blocked).
        return (Sizes, (self._profile, self._values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Sizes[{self._profile}]({inner})"


@dataclass(frozen=True)
class Profile:
    """The active run profile: its name, why it was chosen, and the torch thread count."""

    name: str
    reason: str
    threads: int | None  # None: leave torch's default

    def sizes(self, *, ci: Mapping, cpu: Mapping, gpu: Mapping) -> Sizes:
        """This profile's sizes. All three profiles must name the same keys (same code path)."""
        given = {"ci": ci, "cpu": cpu, "gpu": gpu}
        for name, values in given.items():
            if not isinstance(values, Mapping):
                raise TypeError(f"{name} must be a dict of sizes, got {type(values).__name__}")
        keys = set(ci)
        for name, values in given.items():
            if set(values) != keys:
                missing = sorted(keys - set(values))
                extra = sorted(set(values) - keys)
                raise ValueError(
                    f"{name} must name the same sizes as ci (same code path in every profile): "
                    f"missing {missing}, extra {extra}"
                )
        return Sizes(self.name, given[self.name])

    def pick(self, *, ci: Any, cpu: Any, gpu: Any) -> Any:
        """One value per profile; returns this profile's."""
        return {"ci": ci, "cpu": cpu, "gpu": gpu}[self.name]

    def describe(self) -> str:
        threads = "torch default" if self.threads is None else str(self.threads)
        return (
            f"profile {self.name}: {DESCRIPTIONS[self.name]}\n"
            f"  chosen because {self.reason}; intra-op threads: {threads}"
        )


def resolve(name: str | None = None, device_type: str | None = None) -> Profile:
    """Which profile applies, without side effects.

    name: 'ci', 'cpu' or 'gpu'; None reads COURSE_PROFILE, and when that is unset too the
    profile follows the device ('gpu' on CUDA, else 'cpu'). device_type: the device the default
    follows; None asks `course_lib.device.plan()`.
    """
    if name is not None:
        source, value = "name", name
    elif os.environ.get("COURSE_PROFILE"):
        source, value = "environment variable COURSE_PROFILE", os.environ["COURSE_PROFILE"]
    else:
        source, value = None, None
    if value is not None:
        if not isinstance(value, str) or value.strip().lower() not in PROFILES:
            raise ValueError(f"{source} must be one of {', '.join(PROFILES)}; got {value!r}")
        value = value.strip().lower()
        reason = "COURSE_PROFILE is set" if source != "name" else "it was asked for by name"
        return Profile(value, reason, THREADS[value])
    if device_type is None:
        device_type = _device.plan().type
    if device_type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device_type must be 'cpu', 'cuda' or 'mps', got {device_type!r}")
    value = "gpu" if device_type == "cuda" else "cpu"
    return Profile(value, f"COURSE_PROFILE is unset and the device is {device_type}", None)


def activate(name: str | None = None) -> Profile:
    """Resolve the profile and apply it (the `ci` profile runs torch on one thread)."""
    p = resolve(name)
    if p.threads is not None:
        torch.set_num_threads(p.threads)
    return p


# --------------------------------------------------------------------------- the course map


def load_course_map(path: str | os.PathLike | None = None) -> dict:
    """The parsed course map (default: course_map.toml at the root of the clone)."""
    p = Path(path) if path is not None else COURSE_MAP
    if not p.is_file():
        raise FileNotFoundError(
            f"course map not found at {p}; course_lib must be installed from a clone of the "
            "course (pip install -e .), which holds course_map.toml"
        )
    with open(p, "rb") as f:
        return tomllib.load(f)


def notebook_entry(notebook: str, course_map: dict | None = None) -> dict:
    """The course-map entry of one notebook, by number ('03') or file stem ('03_attention')."""
    cmap = course_map if course_map is not None else load_course_map()
    for entry in cmap["notebook"]:
        if notebook in (entry["id"], entry["file"].removesuffix(".ipynb")):
            return entry
    known = ", ".join(e["id"] for e in cmap["notebook"])
    raise ValueError(f"notebook {notebook!r} is not in the course map (known: {known})")


def format_seconds(seconds: float) -> str:
    """7.25 -> '7 s', 95 -> '1 min 35 s', 4000 -> '1 h 06 min'."""
    if not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
    s = round(seconds)
    if s < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def run_time_text(entry: dict, profile: str) -> str:
    """'7 s' for a measured run time, else 'not measured'."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    rt = entry.get("run_time", {}).get(profile, "not measured")
    if isinstance(rt, dict):
        return format_seconds(rt["seconds"])
    return str(rt)


def course_table(profile: str | None = None, course_map: dict | None = None) -> str:
    """The course map as a text table with run times in one profile (default: the active one)."""
    cmap = course_map if course_map is not None else load_course_map()
    name = profile if profile is not None else resolve().name
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {name!r}")
    rows = [("#", "notebook", "status", f"run time ({name})")]
    for e in cmap["notebook"]:
        rows.append((e["id"], e["title"], e["status"], run_time_text(e, name)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def notebook_card(notebook: str, course_map: dict | None = None) -> str:
    """What a notebook teaches, from the course map: objectives, seed sections, run times."""
    cmap = course_map if course_map is not None else load_course_map()
    e = notebook_entry(notebook, cmap)
    out = [f"Notebook {e['id']}: {e['title']}", "", "You will be able to:"]
    out += [f"  - {o}" for o in e["objectives"]]
    out += [
        "",
        f"Seed guide sections: {', '.join(e['seed_sections']) or 'none'}",
        f"Prerequisites: {', '.join(e['prerequisites']) or 'none'}",
        f"course_lib modules introduced: {', '.join(e['modules']) or 'none'}",
        f"Minutes to teach: {e['teach_minutes']}",
        "Run time: " + ", ".join(f"{p} {run_time_text(e, p)}" for p in PROFILES),
    ]
    return "\n".join(out)
