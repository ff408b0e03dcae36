"""course_lib.plots: labelled axes, colour-blind-safe colours, clear errors."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_line_labels_colours_and_markers():
    ax = plots.line(
        [1, 2, 4],
        {"a": [1, 2, 3], "b": torch.tensor([3.0, 2, 1])},
        xlabel="n",
        ylabel="rate",
        logx=True,
    )
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("n", "rate")
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["a", "b"]
    assert [ln.get_color() for ln in lines] == plots.LINE_COLOURS[:2]
    assert lines[0].get_marker() != lines[1].get_marker()  # not told by colour alone
    assert ax.get_xscale() == "log" and ax.get_legend() is not None


def test_single_series_has_no_legend():
    ax = plots.line(np.arange(3), [1.0, 2.0, 3.0], xlabel="x", ylabel="y", title="t")
    assert ax.get_legend() is None and ax.get_title() == "t"


def test_loss_curves():
    ax = plots.loss_curves({"train": ([0, 10, 20], [3.0, 2.0, 1.5]), "val": ([0, 20], [3.1, 1.9])})
    assert ax.get_ylabel() == "loss (nats per token)" and ax.get_xlabel() == "step"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]


def test_loss_curves_dash_held_out_runs_and_draw_baselines():
    ax = plots.loss_curves(
        {
            "GPT train": ([0, 10], [3.0, 2.0]),
            "GPT val": ([0, 10], [3.1, 2.2]),
            "GRU validation": ([0, 10], [3.2, 2.4]),
        },
        baselines={"uniform": 4.17, "unigram": 3.3, "bigram": 2.5},
    )
    gpt_train, gpt_val, gru_val, *refs = ax.get_lines()
    assert gpt_train.get_linestyle() == "-" and gpt_val.get_linestyle() == "--"
    assert gpt_train.get_color() == gpt_val.get_color() != gru_val.get_color()
    assert gru_val.get_linestyle() == "--"
    assert [r.get_ydata()[0] for r in refs] == [4.17, 3.3, 2.5]
    assert len({r.get_linestyle() for r in refs}) == 3  # told apart by style, not colour
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[3:] == ["uniform 4.17", "unigram 3.30", "bigram 2.50"]


def test_heatmap_uses_a_colour_blind_safe_map():
    ax = plots.heatmap(
        torch.rand(3, 4), row_labels=list("abc"), col_labels=list("wxyz"), annotate=True
    )
    assert ax.images[0].get_cmap().name == "cividis"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert len(ax.texts) == 12
    assert ax.figure.axes[-1].get_ylabel() == "weight"  # the colour bar says what it shows


def test_draws_into_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    assert plots.line([0, 1], [0, 1], xlabel="x", ylabel="y", ax=right) is right
    assert not left.get_lines()


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (
            lambda: plots.line([1, 2], {"a": [1]}, xlabel="x", ylabel="y"),
            ValueError,
            "ys['a'] has 1 values but x has 2",
        ),
        (
            lambda: plots.line([1, 2], [1, 2], xlabel="", ylabel="y"),
            ValueError,
            "xlabel must be a non-empty string",
        ),
        (
            lambda: plots.line([1, 2], {}, xlabel="x", ylabel="y"),
            ValueError,
            "ys must hold at least one line",
        ),
        (
            lambda: plots.line([[1, 2]], [1], xlabel="x", ylabel="y"),
            ValueError,
            "x must be one-dimensional",
        ),
        (
            lambda: plots.line(["a", "b"], [1, 2], xlabel="x", ylabel="y"),
            TypeError,
            "x must be a sequence of numbers",
        ),
        (lambda: plots.loss_curves({}), ValueError, "curves must be a non-empty dict"),
        (
            lambda: plots.loss_curves({"t": ([1, 2], [1])}),
            ValueError,
            "curves['t'] has 2 steps but 1 losses",
        ),
        (lambda: plots.loss_curves({"t": [1, 2, 3]}), ValueError, "curves['t'] must be a pair"),
        (
            lambda: plots.heatmap(np.zeros(3)),
            ValueError,
            "matrix must be 2-D (rows, cols), got shape (3,)",
        ),
        (
            lambda: plots.heatmap(np.zeros((2, 2)), row_labels=["a"]),
            ValueError,
            "row_labels has 1 labels for 2 rows",
        ),
        (
            lambda: plots.line([1], [1], xlabel="x", ylabel="y", ax="left"),
            TypeError,
            "ax must be a matplotlib Axes",
        ),
    ],
)
def test_bad_input_is_named(call, exc, message):
    with pytest.raises(exc) as e:
        call()
    assert message in str(e.value)
