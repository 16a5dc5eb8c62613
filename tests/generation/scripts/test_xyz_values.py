"""The X/Y/Z plot's value syntax and axis lists, against the WebUI's documented examples."""

from __future__ import annotations

import pytest

from openesd.errors import GenerationError
from openesd.generation.scripts import _axes
from openesd.generation.scripts._values import convert, expand_floats, expand_ints, join_csv, split_csv
from openesd.generation.scripts.xyz import read_args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-5 (+2)", [1, 3, 5]),
        ("10-5 (-3)", [10, 7]),
        ("1-3, 7, 10-11", [1, 2, 3, 7, 10, 11]),
        ("1-10 [5]", [1, 3, 5, 7, 10]),
        ("0-100 [3]", [0, 50, 100]),
        ("-1, -5--3", [-1, -5, -4, -3]),
    ],
)
def test_integer_ranges_expand_as_the_webui_documents(text, expected):
    assert convert(expand_ints(split_csv(text)), int, "Steps") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.25-1 (+0.25)", [0.25, 0.5, 0.75, 1.0]),
        ("1-2", [1.0, 2.0]),
        ("0.0-1.0 [6]", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        ("7, 7.5", [7.0, 7.5]),
    ],
)
def test_float_ranges_expand_as_the_webui_documents(text, expected):
    assert convert(expand_floats(split_csv(text)), float, "CFG Scale") == pytest.approx(expected)


def test_csv_quoting_keeps_commas_inside_quotes():
    assert split_csv('cat,"a dog, running", bird') == ["cat", "a dog, running", "bird"]
    # Python's csv (the WebUI's too) starts a quoted field only right after the comma.
    assert split_csv('cat, "a dog, running"') == ["cat", '"a dog', 'running"']
    assert join_csv(["a", "b, c"]) == 'a,"b, c"'


def test_a_value_that_is_not_a_number_names_the_axis():
    with pytest.raises(GenerationError, match="Steps value 'ten' is not an integer"):
        convert(expand_ints(["ten"]), int, "Steps")


def test_the_two_webui_axis_lists_differ_by_task_and_version():
    txt, img = _axes.axis_list("txt2img", "1.10"), _axes.axis_list("img2img", "1.10")
    assert txt.labels[5] == "Hires steps" and img.labels[5] == "CFG Scale"
    assert txt.find(30, "X").label == "VAE" and txt.find(38, "X").label == "Refiner checkpoint"
    assert img.find(9, "X").label == "Sampler" and img.find(10, "X").label == "Checkpoint name"
    legacy = _axes.axis_list("txt2img", "1.7")  # ESD's payloads: VAE 27, refiner 35
    assert legacy.find(27, "X").label == "VAE" and legacy.find(35, "X").label == "Refiner checkpoint"
    assert txt.find("scheduler", "X").label == "Schedule type"
    with pytest.raises(GenerationError, match="Hires steps"):
        img.find("Hires steps", "X")


def test_script_args_layouts_by_length():
    args_110 = [4, "1-3", [], 0, "", [], 0, "", [], False, True, True, True, True, False, False, 8, False]
    options, axes, version = read_args(args_110, "txt2img")
    assert version == "1.10" and axes[0].values == [1, 2, 3] and options["margin_size"] == 8
    assert options["vary_seeds"] == [True, False, False] and options["no_fixed_seeds"]
    args_17 = [4, "2", [], 0, "", [], 0, "", [], True, False, False, False, 0, False]
    options, axes, version = read_args(args_17, "txt2img")
    assert version == "1.7" and axes[0].values == [2] and options["draw_legend"]
    with pytest.raises(GenerationError, match="17"):
        read_args([0] * 17, "txt2img")


def test_dropdown_axes_read_the_list_unless_csv_mode():
    args = [11, "x.safetensors", ["a.safetensors", "b.safetensors"], 0, "", [], 0, "", []]
    _, axes, _ = read_args([*args, True, False, False, False, 0, False], "txt2img")
    assert axes[0].values == ["a.safetensors", "b.safetensors"] and axes[0].text == "a.safetensors,b.safetensors"
    _, axes, _ = read_args([*args, True, False, False, False, 0, True], "txt2img")
    assert axes[0].values == ["x.safetensors"]


def test_styles_and_bad_axis_types_are_refused_by_name():
    with pytest.raises(GenerationError, match="'Styles' is not supported: this worker has no saved prompt styles"):
        read_args(["Styles", "", ["s"], 0, "", [], 0, "", []], "txt2img")
    with pytest.raises(GenerationError, match="X type 99 is not an index of the WebUI 1.7 axis list"):
        read_args([99, "1", [], 0, "", [], 0, "", []], "txt2img")
    with pytest.raises(GenerationError, match="the X axis \\(Steps\\) has no values"):
        read_args([4, "", [], 0, "", [], 0, "", []], "txt2img")
