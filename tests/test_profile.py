"""course_lib.profile: choosing a profile, sizes per profile, the course-map readers."""

import copy
import pickle

import pytest
import torch

from course_lib import profile


@pytest.fixture
def no_profile_env(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)


@pytest.mark.parametrize("device_type, expected", [("cuda", "gpu"), ("cpu", "cpu"), ("mps", "cpu")])
def test_default_follows_the_device(no_profile_env, device_type, expected):
    p = profile.resolve(device_type=device_type)
    assert p.name == expected and p.threads is None
    assert device_type in p.reason


def test_default_asks_the_device_module(no_profile_env, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert profile.resolve().name == "cpu"


def test_environment_and_name(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", " GPU ")
    assert profile.resolve().name == "gpu"
    assert profile.resolve("ci").name == "ci"  # a name beats the environment
    assert profile.resolve("ci").threads == 1


@pytest.mark.parametrize(
    "kwargs, env, message",
    [
        (dict(name="gpuu"), None, "name must be one of ci, cpu, gpu; got 'gpuu'"),
        (dict(name=3), None, "name must be one of ci, cpu, gpu; got 3"),
        ({}, "fast", "environment variable COURSE_PROFILE must be one of ci, cpu, gpu; got 'fast'"),
        (dict(device_type="tpu"), None, "device_type must be 'cpu', 'cuda' or 'mps', got 'tpu'"),
    ],
)
def test_bad_profile_input_is_named(monkeypatch, kwargs, env, message):
    if env is None:
        monkeypatch.delenv("COURSE_PROFILE", raising=False)
    else:
        monkeypatch.setenv("COURSE_PROFILE", env)
    with pytest.raises(ValueError) as e:
        profile.resolve(**kwargs)
    assert message in str(e.value)


def test_activate_ci_uses_one_thread():
    before = torch.get_num_threads()
    try:
        p = profile.activate("ci")
        assert p.name == "ci" and torch.get_num_threads() == 1
        assert "intra-op threads: 1" in p.describe()
    finally:
        torch.set_num_threads(before)


def test_activate_bad_name():
    with pytest.raises(ValueError, match="name must be one of ci, cpu, gpu; got 'laptop'"):
        profile.activate("laptop")


def test_activate_cpu_leaves_threads_alone():
    before = torch.get_num_threads()
    assert profile.activate("cpu").threads is None
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------- sizes


def test_sizes_pick_the_active_profile():
    sizes = dict(
        ci=dict(steps=2, width=8), cpu=dict(steps=20, width=64), gpu=dict(steps=200, width=512)
    )
    for name in profile.PROFILES:
        s = profile.resolve(name).sizes(**sizes)
        assert dict(s) == sizes[name]
        assert s.steps == sizes[name]["steps"] and s["width"] == sizes[name]["width"]
    assert repr(profile.resolve("ci").sizes(**sizes)) == "Sizes[ci](steps=2, width=8)"
    assert profile.resolve("gpu").pick(ci=1, cpu=2, gpu=3) == 3


def test_sizes_must_name_the_same_keys():
    p = profile.resolve("ci")
    with pytest.raises(
        ValueError, match=r"gpu must name the same sizes as ci .*missing \['width'\]"
    ):
        p.sizes(ci=dict(steps=1, width=2), cpu=dict(steps=1, width=2), gpu=dict(steps=1))
    with pytest.raises(ValueError, match=r"cpu must name .*extra \['depth'\]"):
        p.sizes(ci=dict(steps=1), cpu=dict(steps=1, depth=2), gpu=dict(steps=1))
    with pytest.raises(TypeError, match="cpu must be a dict of sizes, got int"):
        p.sizes(ci=dict(steps=1), cpu=5, gpu=dict(steps=1))
    with pytest.raises(TypeError, match="gpu"):
        p.sizes(ci=dict(steps=1), cpu=dict(steps=1))


def test_sizes_are_read_only_and_say_what_they_have():
    s = profile.resolve("ci").sizes(ci=dict(steps=1), cpu=dict(steps=2), gpu=dict(steps=3))
    with pytest.raises(AttributeError, match="read-only"):
        s.steps = 5
    with pytest.raises(AttributeError, match=r"no 'stpes'; they have \['steps'\]"):
        _ = s.stpes
    assert len(s) == 1 and list(s) == ["steps"]


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda s: pickle.loads(pickle.dumps(s))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_sizes_copy_deepcopy_and_pickle_round_trip(duplicate):
    s = profile.resolve("cpu").sizes(
        ci=dict(steps=1, hidden=[4]), cpu=dict(steps=2, hidden=[8]), gpu=dict(steps=3, hidden=[16])
    )
    twin = duplicate(s)
    assert type(twin) is profile.Sizes
    assert dict(twin) == {"steps": 2, "hidden": [8]} and twin.steps == 2
    assert repr(twin) == repr(s) == "Sizes[cpu](steps=2, hidden=[8])"
    with pytest.raises(AttributeError, match="read-only"):
        twin.steps = 5
    with pytest.raises(AttributeError, match=r"no 'width'; they have \['hidden', 'steps'\]"):
        _ = twin.width


# --------------------------------------------------------------------------- course map


@pytest.mark.parametrize(
    "seconds, text",
    [(0.25, "0.2 s"), (7.25, "7 s"), (59.4, "59 s"), (95, "1 min 35 s"), (4000, "1 h 06 min")],
)
def test_format_seconds(seconds, text):
    assert profile.format_seconds(seconds) == text


@pytest.mark.parametrize("bad", [-1, "7", None])
def test_format_seconds_bad_input(bad):
    with pytest.raises(ValueError, match="seconds must be a number >= 0"):
        profile.format_seconds(bad)


def test_run_time_text():
    entry = {
        "run_time": {"ci": {"seconds": 12.3, "date": "d", "machine": "m"}, "cpu": "not measured"}
    }
    assert profile.run_time_text(entry, "ci") == "12 s"
    assert profile.run_time_text(entry, "cpu") == "not measured"
    assert profile.run_time_text(entry, "gpu") == "not measured"
    with pytest.raises(ValueError, match="profile must be one of ci, cpu, gpu; got 'tpu'"):
        profile.run_time_text(entry, "tpu")


def test_notebook_entry_and_card():
    cmap = profile.load_course_map()
    assert profile.notebook_entry("00", cmap)["file"] == "00_setup_and_doctor.ipynb"
    assert profile.notebook_entry("00_setup_and_doctor")["id"] == "00"
    card = profile.notebook_card("00", cmap)
    assert card.startswith("Notebook 00: ") and "Seed guide sections: 5.1" in card
    with pytest.raises(ValueError, match="notebook '99' is not in the course map"):
        profile.notebook_entry("99", cmap)


def test_course_table_has_one_row_per_notebook():
    cmap = profile.load_course_map()
    table = profile.course_table("gpu", cmap)
    lines = table.splitlines()
    assert len(lines) == 2 + len(cmap["notebook"])
    assert lines[0].split() == ["#", "notebook", "status", "run", "time", "(gpu)"]
    with pytest.raises(ValueError, match="profile must be one of"):
        profile.course_table("laptop", cmap)


def test_load_course_map_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="course map not found at"):
        profile.load_course_map(tmp_path / "nope.toml")
