"""The WebUI's prompt scheduling grammar: edits, alternation, `AND`, hires steps, and the WebUI's quirks.

Expectations are the WebUI 1.10's: its doctests where it has them, otherwise worked out by its rules and
checked against its own grammar (`modules/prompt_parser.py`) run on the same prompts.
"""

from __future__ import annotations

import pytest

from openesd.errors import PayloadError
from openesd.generation.prompts.schedules import (
    ScheduledPrompt,
    composable_schedule,
    prompt_schedule,
    split_and,
    text_at_step,
)


def _alternating(*texts: str, steps: int) -> list[tuple[int, str]]:
    return [(step, texts[(step - 1) % len(texts)]) for step in range(1, steps + 1)]


# ---- the WebUI's doctests (`get_learned_conditioning_prompt_schedules`, 10 steps) -----------------


@pytest.mark.parametrize(
    ("prompt", "hires_steps", "expected"),
    [
        ("test", None, [(10, "test")]),
        ("a [b:3]", None, [(3, "a "), (10, "a b")]),
        ("a [b: 3]", None, [(3, "a "), (10, "a b")]),
        ("a [[[b]]:2]", None, [(2, "a "), (10, "a [[b]]")]),
        ("[(a:2):3]", None, [(3, ""), (10, "(a:2)")]),
        ("a [b : c : 1] d", None, [(1, "a b  d"), (10, "a  c  d")]),
        ("a[b:[c:d:2]:1]e", None, [(1, "abe"), (2, "ace"), (10, "ade")]),
        ("a [unbalanced", None, [(10, "a [unbalanced")]),
        ("a [b:.5] c", None, [(5, "a  c"), (10, "a b c")]),
        ("((a][:b:c [d:3]", None, [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
        ("[a|(b:1.1)]", None, _alternating("a", "(b:1.1)", steps=10)),
        ("[fe|]male", None, _alternating("female", "male", steps=10)),
        ("[fe|||]male", None, _alternating("female", "male", "male", "male", steps=10)),
        ("a [b:.5] c", 10, [(10, "a b c")]),
        ("a [b:1.5] c", 10, [(5, "a  c"), (10, "a b c")]),
    ],
)
def test_the_webuis_doctests(prompt: str, hires_steps: int | None, expected: list) -> None:
    assert prompt_schedule(prompt, 10, hires_steps) == expected


# ---- a corpus of prompts as people write them -----------------------------------------------------

CORPUS = [
    pytest.param(
        "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile",
        20,
        None,
        False,
        [(20, "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile")],
        id="plain_tags",
    ),
    pytest.param(
        "(masterpiece:1.2), (best quality:1.1), ((detailed eyes)), [blurry], 1girl, silver hair",
        20,
        None,
        False,
        [(20, "(masterpiece:1.2), (best quality:1.1), ((detailed eyes)), [blurry], 1girl, silver hair")],
        id="weights_only",
    ),
    pytest.param(
        "<lora:add_detail:0.6>, 1girl, (detailed face:1.2), embedding:easynegative, cinematic lighting",
        20,
        None,
        False,
        [(20, "<lora:add_detail:0.6>, 1girl, (detailed face:1.2), embedding:easynegative, cinematic lighting")],
        id="lora_and_embedding",
    ),
    pytest.param(
        "a photo of a [cat:dog:0.5] sitting on a sofa",
        20,
        None,
        False,
        [(10, "a photo of a cat sitting on a sofa"), (20, "a photo of a dog sitting on a sofa")],
        id="edit_fraction",
    ),
    # 0.33 * 20 = 6.6, truncated to step 6 (int(), not round())
    pytest.param(
        "portrait of a [young:old:0.33] woman, film grain",
        20,
        None,
        False,
        [(6, "portrait of a young woman, film grain"), (20, "portrait of a old woman, film grain")],
        id="edit_fraction_truncates",
    ),
    # 0.5 * 25 = 12.5 -> 12
    pytest.param(
        "a [red:blue:0.5] sports car, studio lighting",
        25,
        None,
        False,
        [(12, "a red sports car, studio lighting"), (25, "a blue sports car, studio lighting")],
        id="edit_fraction_truncates_odd_steps",
    ),
    pytest.param(
        "fantasy castle, [sunrise:night sky:12], volumetric fog",
        30,
        None,
        False,
        [(12, "fantasy castle, sunrise, volumetric fog"), (30, "fantasy castle, night sky, volumetric fog")],
        id="edit_step_number",
    ),
    # a step past the end is clamped to the last step: the edit never happens
    pytest.param(
        "[forest:desert:40], wide shot, 8k",
        30,
        None,
        False,
        [(30, "forest, wide shot, 8k")],
        id="edit_step_beyond_steps",
    ),
    # written with a point, 1.0 is a fraction: all of the steps
    pytest.param(
        "[winter:summer:1.0] landscape", 10, None, False, [(10, "winter landscape")], id="edit_fraction_one_point_zero"
    ),
    # a `when` below step 1 is never reached: `to` from the start
    pytest.param(
        "[sketch:oil painting:0] of a lighthouse",
        20,
        None,
        False,
        [(20, "oil painting of a lighthouse")],
        id="edit_zero",
    ),
    pytest.param(
        "1girl, standing, [detailed background:0.3], depth of field",
        20,
        None,
        False,
        [(6, "1girl, standing, , depth of field"), (20, "1girl, standing, detailed background, depth of field")],
        id="add_after_fraction",
    ),
    pytest.param(
        "a knight in armor[, intricate engravings:8]",
        20,
        None,
        False,
        [(8, "a knight in armor"), (20, "a knight in armor, intricate engravings")],
        id="add_after_step",
    ),
    pytest.param(
        "landscape, [lens flare::0.25], golden hour",
        20,
        None,
        False,
        [(5, "landscape, lens flare, golden hour"), (20, "landscape, , golden hour")],
        id="remove_after_fraction",
    ),
    pytest.param(
        "[blurry, rough sketch::5] clean lineart, anime style",
        20,
        None,
        False,
        [(5, "blurry, rough sketch clean lineart, anime style"), (20, " clean lineart, anime style")],
        id="remove_after_step",
    ),
    # the WebUI's module comment
    pytest.param(
        "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]",
        100,
        None,
        False,
        [
            (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
            (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
            (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
            (75, "fantasy landscape with a lake and an oak in background masterful"),
            (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
        ],
        id="webui_doc_landscape",
    ),
    # the WebUI's doctest; the spaces inside `from` and `to` are kept
    pytest.param("a [b : c : 1] d", 10, None, False, [(1, "a b  d"), (10, "a  c  d")], id="edit_spaces_around_when"),
    pytest.param(
        "city street, [day: 0.5], neon",
        10,
        None,
        False,
        [(5, "city street, , neon"), (10, "city street, day, neon")],
        id="edit_space_after_colon",
    ),
    pytest.param(
        "city street, [rain:snow:0.5 ], neon",
        10,
        None,
        False,
        [(5, "city street, rain, neon"), (10, "city street, snow, neon")],
        id="edit_space_before_bracket",
    ),
    # the WebUI's doctest
    pytest.param("a[b:[c:d:2]:1]e", 10, None, False, [(1, "abe"), (2, "ace"), (10, "ade")], id="nested_edit_in_to"),
    pytest.param(
        "[[a girl:a woman:5]:an old lady:15], portrait, bokeh",
        20,
        None,
        False,
        [(5, "a girl, portrait, bokeh"), (15, "a woman, portrait, bokeh"), (20, "an old lady, portrait, bokeh")],
        id="nested_edit_in_from",
    ),
    pytest.param(
        "[cat:dog:0.5] and [sun:moon:10]",
        20,
        None,
        False,
        [(10, "cat and sun"), (20, "dog and moon")],
        id="two_edits_same_step",
    ),
    pytest.param(
        "1girl, [(red hair:1.3):(blue hair:1.3):0.4], school uniform",
        20,
        None,
        False,
        [(8, "1girl, (red hair:1.3), school uniform"), (20, "1girl, (blue hair:1.3), school uniform")],
        id="edit_emphasis_inside",
    ),
    pytest.param(
        "(a [cat:tiger:0.5] in the jungle:1.2), highly detailed",
        20,
        None,
        False,
        [(10, "(a cat in the jungle:1.2), highly detailed"), (20, "(a tiger in the jungle:1.2), highly detailed")],
        id="edit_inside_emphasis",
    ),
    pytest.param(
        "((masterpiece)), ((([sparkles:fireflies:6])))",
        20,
        None,
        False,
        [(6, "((masterpiece)), (((sparkles)))"), (20, "((masterpiece)), (((fireflies)))")],
        id="edit_inside_double_emphasis",
    ),
    # `[text]` de-emphasis keeps its brackets
    pytest.param(
        "[background [people:trees:0.5]], 1boy",
        10,
        None,
        False,
        [(5, "[background people], 1boy"), (10, "[background trees], 1boy")],
        id="edit_inside_deemphasis",
    ),
    pytest.param(
        "<lora:epiNoiseoffset_v2:0.8> dark room, [candle:lantern:0.5] light",
        20,
        None,
        False,
        [
            (10, "<lora:epiNoiseoffset_v2:0.8> dark room, candle light"),
            (20, "<lora:epiNoiseoffset_v2:0.8> dark room, lantern light"),
        ],
        id="edit_with_lora_tag_outside",
    ),
    pytest.param(
        "[EasyNegative:bad-hands-5:0.5], lowres",
        10,
        None,
        False,
        [(5, "EasyNegative, lowres"), (10, "bad-hands-5, lowres")],
        id="edit_with_embedding_name",
    ),
    # BREAK is only text here; the emphasis parser splits chunks on it later
    pytest.param(
        "1girl, red dress [BREAK:, :0.5] city background",
        10,
        None,
        False,
        [(5, "1girl, red dress BREAK city background"), (10, "1girl, red dress ,  city background")],
        id="edit_with_break_inside",
    ),
    pytest.param(
        "[forest BREAK river:desert BREAK oasis:0.5], wide angle",
        10,
        None,
        False,
        [(5, "forest BREAK river, wide angle"), (10, "desert BREAK oasis, wide angle")],
        id="break_inside_both_sides",
    ),
    pytest.param(
        "masterpiece, 1girl BREAK [smile:crying:0.6], tears BREAK night sky",
        10,
        None,
        False,
        [
            (6, "masterpiece, 1girl BREAK smile, tears BREAK night sky"),
            (10, "masterpiece, 1girl BREAK crying, tears BREAK night sky"),
        ],
        id="break_and_edit",
    ),
    pytest.param(
        "[cat|dog] plushie on a shelf",
        6,
        None,
        False,
        [
            (1, "cat plushie on a shelf"),
            (2, "dog plushie on a shelf"),
            (3, "cat plushie on a shelf"),
            (4, "dog plushie on a shelf"),
            (5, "cat plushie on a shelf"),
            (6, "dog plushie on a shelf"),
        ],
        id="alternation_two",
    ),
    pytest.param(
        "portrait, [red|green|blue] hair",
        6,
        None,
        False,
        [
            (1, "portrait, red hair"),
            (2, "portrait, green hair"),
            (3, "portrait, blue hair"),
            (4, "portrait, red hair"),
            (5, "portrait, green hair"),
            (6, "portrait, blue hair"),
        ],
        id="alternation_three",
    ),
    # the WebUI's doctest (at 4 steps)
    pytest.param(
        "[fe|]male knight, armor",
        4,
        None,
        False,
        [
            (1, "female knight, armor"),
            (2, "male knight, armor"),
            (3, "female knight, armor"),
            (4, "male knight, armor"),
        ],
        id="alternation_empty_option",
    ),
    pytest.param(
        "(a [cow|horse] in a field:1.3)",
        4,
        None,
        False,
        [
            (1, "(a cow in a field:1.3)"),
            (2, "(a horse in a field:1.3)"),
            (3, "(a cow in a field:1.3)"),
            (4, "(a horse in a field:1.3)"),
        ],
        id="alternation_inside_emphasis",
    ),
    # the WebUI's doctest (at 4 steps)
    pytest.param(
        "[a|(b:1.1)]",
        4,
        None,
        False,
        [(1, "a"), (2, "(b:1.1)"), (3, "a"), (4, "(b:1.1)")],
        id="alternation_with_weighted_option",
    ),
    # the alternation counts from step 1 even while it is hidden
    pytest.param(
        "[a photo:[oil|watercolor] painting:2] of a harbor",
        5,
        None,
        False,
        [
            (1, "a photo of a harbor"),
            (2, "a photo of a harbor"),
            (3, "oil painting of a harbor"),
            (4, "watercolor painting of a harbor"),
            (5, "oil painting of a harbor"),
        ],
        id="alternation_nested_in_edit",
    ),
    pytest.param(
        "[[cat:dog:2]|bird] on a branch",
        4,
        None,
        False,
        [(1, "cat on a branch"), (2, "bird on a branch"), (3, "dog on a branch"), (4, "bird on a branch")],
        id="edit_nested_in_alternation",
    ),
    # a nested alternation is chosen by the same step: step 1 and 3 both pick `red`
    pytest.param(
        "[[red|blue]|green] flowers",
        5,
        None,
        False,
        [(1, "red flowers"), (2, "green flowers"), (3, "red flowers"), (4, "green flowers"), (5, "red flowers")],
        id="alternation_nested",
    ),
    # escapes stay as written; the emphasis parser reads them later
    pytest.param(
        "\\(artist name\\), \\[wip\\] sketch",
        10,
        None,
        False,
        [(10, "\\(artist name\\), \\[wip\\] sketch")],
        id="escaped_brackets_plain",
    ),
    pytest.param(
        "sign that says \\[[open:closed:0.5]\\]",
        10,
        None,
        False,
        [(5, "sign that says \\[open\\]"), (10, "sign that says \\[closed\\]")],
        id="escaped_brackets_around_edit",
    ),
    # `\:` is text, not the edit's separator
    pytest.param(
        "[ratio 16\\:9:square:0.5] frame",
        10,
        None,
        False,
        [(5, "ratio 16\\:9 frame"), (10, "square frame")],
        id="escaped_colon_in_edit",
    ),
    pytest.param("logo, a\\|b testing", 10, None, False, [(10, "logo, a\\|b testing")], id="escaped_pipe_text"),
    # escaped brackets open nothing
    pytest.param(
        "\\[cat:dog:0.5\\]", 10, None, False, [(10, "\\[cat:dog:0.5\\]")], id="escaped_bracket_literal_schedule"
    ),
    pytest.param(
        "smile \\(^_^\\), [happy:sad:0.5]",
        10,
        None,
        False,
        [(5, "smile \\(^_^\\), happy"), (10, "smile \\(^_^\\), sad")],
        id="emoticon_escaped",
    ),
    pytest.param("a [unbalanced", 10, None, False, [(10, "a [unbalanced")], id="unbalanced_open"),
    # the WebUI's doctest: stray brackets and colons at the top level are text
    pytest.param(
        "((a][:b:c [d:3]", 10, None, False, [(3, "((a][:b:c "), (10, "((a][:b:c d")], id="unbalanced_then_edit"
    ),
    # a `|` outside an alternation is not the grammar: the whole prompt is text, edits included
    pytest.param(
        "masterpiece | best quality | [cat:dog:0.5]",
        10,
        None,
        False,
        [(10, "masterpiece | best quality | [cat:dog:0.5]")],
        id="bare_pipe_makes_literal",
    ),
    # the same inside `( )`
    pytest.param(
        "(cat|dog:1.2), [sunny:rainy:0.5]",
        10,
        None,
        False,
        [(10, "(cat|dog:1.2), [sunny:rainy:0.5]")],
        id="bare_pipe_in_emphasis_literal",
    ),
    # a backslash escapes nothing at the end: the whole prompt is text
    pytest.param(
        "[day:night:0.5] skyline \\",
        10,
        None,
        False,
        [(10, "[day:night:0.5] skyline \\")],
        id="trailing_backslash_literal",
    ),
    # a bracket with three colons is not an edit: text; the next edit still works
    pytest.param(
        "[a:b:c:1] [x:y:2]",
        10,
        None,
        False,
        [(2, "[a:b:c:1] x"), (10, "[a:b:c:1] y")],
        id="three_colon_bracket_literal",
    ),
    # `(a:b:1.2)` is not emphasis at the top level: text
    pytest.param(
        "(score_9:score_8_up:1.2), [cat:dog:2]",
        10,
        None,
        False,
        [(2, "(score_9:score_8_up:1.2), cat"), (10, "(score_9:score_8_up:1.2), dog")],
        id="bad_weight_parens_literal",
    ),
    # `when` must be a number: that bracket is text
    pytest.param(
        "[cat:dog:half], [sun:moon:0.5]",
        10,
        None,
        False,
        [(5, "[cat:dog:half], sun"), (10, "[cat:dog:half], moon")],
        id="edit_with_non_number_when",
    ),
    # inside a construct nothing may stand as text: the whole edit is text
    pytest.param(
        "[a:(b:c:1.2):3]", 10, None, False, [(10, "[a:(b:c:1.2):3]")], id="edit_containing_invalid_weight_literal"
    ),
    # the WebUI's doctest says it gives [[5, 'a  c'], [10, 'a {b|d{ c']], but its own grammar cannot parse `[{b|d{:.5]` (a `|` outside an alternation), so the prompt is text
    pytest.param("a [{b|d{:.5] c", 10, None, False, [(10, "a [{b|d{:.5] c")], id="curly_braces_are_text"),
    # likewise for a negative `when`
    pytest.param("[cat:dog:-1] on a rug", 10, None, False, [(10, "dog on a rug")], id="negative_when"),
    # 1e1 has no point, so it is step 10; 5e-1 is step int(0.5) = 0, never reached
    pytest.param("[cat:dog:1e1] and [sun:moon:5e-1]", 10, None, False, [(10, "cat and moon")], id="exponent_when"),
    # the WebUI's doctest: in the hires pass, .5 ended in the first pass
    pytest.param("a [b:.5] c", 10, 10, False, [(10, "a b c")], id="hires_fraction_first_pass_only"),
    # the WebUI's doctest: 1.5 is halfway through the hires pass
    pytest.param("a [b:1.5] c", 10, 10, False, [(5, "a  c"), (10, "a b c")], id="hires_fraction_above_one"),
    # steps count from the first pass's start: 15 after a 10-step first pass is hires step 5
    pytest.param(
        "portrait, [freckles:15], soft light",
        10,
        10,
        False,
        [(5, "portrait, , soft light"), (10, "portrait, freckles, soft light")],
        id="hires_step_in_second_pass",
    ),
    # step 5 was in the first pass (step -15 of the hires pass): `to` throughout
    pytest.param("[sketch:photo:5] of a cat", 20, 10, False, [(10, "photo of a cat")], id="hires_step_in_first_pass"),
    # alternation runs over the hires pass's own steps
    pytest.param(
        "[cat|dog] mascot",
        10,
        4,
        False,
        [(1, "cat mascot"), (2, "dog mascot"), (3, "cat mascot"), (4, "dog mascot")],
        id="hires_alternation",
    ),
    # 1.25 -> (1.25 - 1) * 8 = 2; 24 -> 24 - 20 = 4
    pytest.param(
        "[a:b:1.25] [c:d:24] e", 20, 8, False, [(2, "a c e"), (4, "b c e"), (8, "b d e")], id="hires_step_fraction_mix"
    ),
    # old scheduling: 2.0 is not below 1, so step 2
    pytest.param(
        "[a:b:2.0] [c:d:0.5]",
        10,
        None,
        True,
        [(2, "a c"), (5, "b c"), (10, "b d")],
        id="old_scheduling_step_with_point",
    ),
    # new scheduling: 2.0 is written with a point, a fraction: 20 steps, clamped to 10
    pytest.param(
        "[a:b:2.0] [c:d:0.5]", 10, None, False, [(5, "a c"), (10, "a d")], id="new_scheduling_step_with_point"
    ),
    # old scheduling ignores the hires steps: the first pass's schedule
    pytest.param(
        "[cat:dog:0.5] sleeping",
        20,
        10,
        True,
        [(10, "cat sleeping"), (20, "dog sleeping")],
        id="old_scheduling_hires_uses_base",
    ),
    # old scheduling: 1.5 is a step, truncated to 1
    pytest.param(
        "[cat:dog:1.5] sleeping",
        10,
        None,
        True,
        [(1, "cat sleeping"), (10, "dog sleeping")],
        id="old_scheduling_one_point_five",
    ),
    pytest.param(
        "masterpiece, best quality, ultra-detailed, (1girl:1.2), solo, [long hair:short hair:0.4], (blue eyes:1.1), school uniform, cherry blossoms, <lora:animeLineart:0.7>, [bokeh::0.8]",
        30,
        None,
        False,
        [
            (
                12,
                "masterpiece, best quality, ultra-detailed, (1girl:1.2), solo, long hair, (blue eyes:1.1), school uniform, cherry blossoms, <lora:animeLineart:0.7>, bokeh",
            ),
            (
                24,
                "masterpiece, best quality, ultra-detailed, (1girl:1.2), solo, short hair, (blue eyes:1.1), school uniform, cherry blossoms, <lora:animeLineart:0.7>, bokeh",
            ),
            (
                30,
                "masterpiece, best quality, ultra-detailed, (1girl:1.2), solo, short hair, (blue eyes:1.1), school uniform, cherry blossoms, <lora:animeLineart:0.7>, ",
            ),
        ],
        id="civitai_long",
    ),
    pytest.param(
        "cinematic film still, a lone astronaut walking on [the moon:mars:0.35], (dust storm:1.2), 35mm, shallow depth of field, [grainy:clean:20]",
        40,
        None,
        False,
        [
            (
                14,
                "cinematic film still, a lone astronaut walking on the moon, (dust storm:1.2), 35mm, shallow depth of field, grainy",
            ),
            (
                20,
                "cinematic film still, a lone astronaut walking on mars, (dust storm:1.2), 35mm, shallow depth of field, grainy",
            ),
            (
                40,
                "cinematic film still, a lone astronaut walking on mars, (dust storm:1.2), 35mm, shallow depth of field, clean",
            ),
        ],
        id="civitai_sdxl_style",
    ),
    pytest.param(
        "portrait of [Emma Watson:Natalie Portman:0.45], (photorealistic:1.3), sharp focus, 85mm",
        20,
        None,
        False,
        [
            (9, "portrait of Emma Watson, (photorealistic:1.3), sharp focus, 85mm"),
            (20, "portrait of Natalie Portman, (photorealistic:1.3), sharp focus, 85mm"),
        ],
        id="civitai_morph",
    ),
    pytest.param(
        "(worst quality, low quality:1.4), [bad anatomy::0.5], extra fingers, embedding:badhandv4",
        20,
        None,
        False,
        [
            (10, "(worst quality, low quality:1.4), bad anatomy, extra fingers, embedding:badhandv4"),
            (20, "(worst quality, low quality:1.4), , extra fingers, embedding:badhandv4"),
        ],
        id="civitai_negative_style",
    ),
    pytest.param(
        "1girl,\n[smile:frown:0.5],\nsky",
        10,
        None,
        False,
        [(5, "1girl,\nsmile,\nsky"), (10, "1girl,\nfrown,\nsky")],
        id="newline_in_prompt",
    ),
    pytest.param("", 10, None, False, [(10, "")], id="empty_prompt"),
    # `[::3]` shows nothing either way, but step 3 is still a boundary
    pytest.param("[::3]a", 10, None, False, [(3, "a"), (10, "a")], id="empty_edit_parts"),
    # 0.29 * 100 is 28.999999999999996 in floating point, so the switch is after step 28
    pytest.param(
        "[day:night:0.29] city, long exposure",
        100,
        None,
        False,
        [(28, "day city, long exposure"), (100, "night city, long exposure")],
        id="float_product_truncates",
    ),
    pytest.param(
        "[a:[b|c]:0.5]",
        4,
        None,
        False,
        [(1, "a"), (2, "a"), (3, "b"), (4, "c")],
        id="alternation_in_hires_text_after_edit",
    ),
]


@pytest.mark.parametrize(("prompt", "steps", "hires_steps", "old", "expected"), CORPUS)
def test_corpus(prompt: str, steps: int, hires_steps: int | None, old: bool, expected: list) -> None:
    schedule = prompt_schedule(prompt, steps, hires_steps, use_old_scheduling=old)
    assert schedule == expected
    assert all(isinstance(entry, ScheduledPrompt) for entry in schedule)


def test_the_corpus_is_large_and_exercises_the_grammar() -> None:
    assert len(CORPUS) >= 60
    scheduled = [p for p in CORPUS if len(p.values[4]) > 1]
    assert len(scheduled) >= 40  # most prompts really change over the steps


# ---- composable prompts (`AND`), as `get_multicond_prompt_list` splits them ----------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat :1.2 AND a dog", [("a cat", 1.2), (" a dog", 1.0)]),
        ("forest AND river:0.5 AND mountains: -0.3", [("forest", 1.0), (" river", 0.5), (" mountains", -0.3)]),
        # `AND` is a whole word in capitals; ANDROID, sAND and `and` are text
        ("ANDROID girl, sAND castle, (android:1.1)", [("ANDROID girl, sAND castle, (android:1.1)", 1.0)]),
        # the WebUI's quirk: a prompt ending in `:number` is one part of that weight (it scales the
        # guidance), even without `AND`; the number is not text
        ("1girl, solo, red hair:1.2", [("1girl, solo, red hair", 1.2)]),
        ("a [cat:5", [("a [cat", 5.0)]),
        ("[cat:dog:0.5] AND (sun:1.2):0.8", [("[cat:dog:0.5]", 1.0), (" (sun:1.2)", 0.8)]),
        # leading whitespace stays, trailing whitespace goes
        ("a photo AND  a painting  ", [("a photo", 1.0), ("  a painting", 1.0)]),
        ("a:1e3 AND b", [("a:1e3", 1.0), (" b", 1.0)]),  # no exponents in an AND weight
        ("a:.5 AND b:5.", [("a", 0.5), (" b", 5.0)]),
        # AND splits before anything is parsed, brackets or not
        ("[a AND b:c:0.5]", [("[a", 1.0), (" b:c:0.5]", 1.0)]),
        (
            "(masterpiece:1.2), 1girl AND (masterpiece:1.2), 1boy :0.7",
            [("(masterpiece:1.2), 1girl", 1.0), (" (masterpiece:1.2), 1boy", 0.7)],
        ),
        ("castle\nAND\nmoat:2", [("castle", 1.0), ("\nmoat", 2.0)]),
        ("a AND a:0.5", [("a", 1.0), (" a", 0.5)]),
        ("AND", [("", 1.0), ("", 1.0)]),
    ],
)
def test_split_and(prompt: str, expected: list) -> None:
    assert split_and(prompt) == expected


def test_composable_schedule_splits_then_schedules_each_part() -> None:
    parts = composable_schedule("a [cat:dog:0.5] :1.2 AND [sun|moon] sky:0.5", 4)
    assert [part.weight for part in parts] == [1.2, 0.5]
    assert parts[0].schedule == [(2, "a cat"), (4, "a dog")]
    assert parts[1].schedule == [(1, " sun sky"), (2, " moon sky"), (3, " sun sky"), (4, " moon sky")]


def test_composable_schedule_passes_hires_and_old_scheduling_on() -> None:
    assert composable_schedule("[a:b:15] AND c", 10, 10)[0].schedule == [(5, "a"), (10, "b")]
    assert composable_schedule("[a:b:1.5] AND c", 10, use_old_scheduling=True)[0].schedule == [(1, "a"), (10, "b")]


# ---- which text a sampler step gets ---------------------------------------------------------------


def test_text_at_step_counts_from_zero_as_the_webuis_denoiser_does() -> None:
    schedule = prompt_schedule("[cat:dog:0.5]", 10)
    assert [text_at_step(schedule, step) for step in range(10)] == ["cat"] * 6 + ["dog"] * 4


def test_text_at_step_past_the_end_falls_back_to_the_first_entry() -> None:
    # the WebUI's `reconstruct_cond_batch` keeps index 0 when no entry is still running
    assert text_at_step(prompt_schedule("[cat:dog:0.5]", 10), 11) == "cat"


def test_alternation_at_each_step() -> None:
    schedule = prompt_schedule("[cat|dog|bird]", 6)
    assert [text_at_step(schedule, step) for step in range(1, 7)] == ["cat", "dog", "bird"] * 2


# ---- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, -3, 2.5, None])
def test_steps_must_be_a_positive_whole_number(steps: object) -> None:
    with pytest.raises(PayloadError, match="steps must be a whole number"):
        prompt_schedule("a [b:c:0.5]", steps)  # type: ignore[arg-type]


def test_hires_steps_must_be_a_positive_whole_number() -> None:
    with pytest.raises(PayloadError, match="hires steps must be a whole number"):
        prompt_schedule("a [b:c:0.5]", 10, 0)


def test_an_infinite_when_is_refused_not_a_crash() -> None:
    # the WebUI raises OverflowError from int(inf) and the job fails; here the message names the number
    with pytest.raises(PayloadError, match="1e999"):
        prompt_schedule("[a:b:1e999]", 10)


def test_an_ambiguous_prompt_takes_the_construct() -> None:
    # The WebUI's lark parser reads this either way depending on Python's hash seed (the edit, or all
    # text); OpenESD always takes the edit (docs/decisions.md, "Prompt schedules").
    assert prompt_schedule("(a:1)[b:3]]", 10) == [(3, "(a:1)]"), (10, "(a:1)b]")]
