"""The ``gemel`` command builds its parser, prints help and rejects bad arguments without
importing torch and the other heavy libraries; the public API still resolves to the real
objects."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import pytest

import gemel
from gemel import choices

HEAVY = ("torch", "torchvision", "matplotlib", "av", "safetensors")

_PROBE = textwrap.dedent(
    """
    import argparse, contextlib, io, sys
    from gemel.cli import build_parser, main

    def exit_status(argv):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                return main(argv)
            except SystemExit as e:
                return e.code

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    statuses = {"--help": exit_status(["--help"])}
    for name in sub.choices:
        statuses[name + " --help"] = exit_status([name, "--help"])
    statuses["merge --strategy nope"] = exit_status(["merge", "w.yaml", "--out", "o",
                                                     "--strategy", "nope"])
    statuses["run"] = exit_status(["run"])
    print(sorted(sub.choices))
    print(statuses)
    print(sorted(m for m in HEAVY if m in sys.modules))
    """
)


def test_help_and_usage_errors_do_not_import_heavy_libraries():
    code = f"HEAVY = {HEAVY!r}\n{_PROBE}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    names, statuses, heavy = (ast.literal_eval(line) for line in out.stdout.strip().splitlines())
    assert {"analyze", "merge", "run", "simulate", "train", "demo"} <= set(names)
    assert statuses.pop("merge --strategy nope") == 2
    assert statuses.pop("run") == 2
    assert statuses == {"--help": 0, **{f"{n} --help": 0 for n in names}}
    assert heavy == []


def test_public_names_resolve_to_the_real_objects():
    from gemel import Analysis, GemelError, load_bundle
    from gemel.analyze import analysis as analysis_module
    from gemel.errors import GemelError as real_error
    from gemel.merge import bundle

    assert load_bundle is bundle.load_bundle
    assert GemelError is real_error
    assert Analysis is analysis_module.Analysis
    # importing the gemel.analyze subpackage must not replace the function of that name
    assert callable(gemel.analyze) and gemel.analyze.__name__ == "analyze"
    assert set(gemel.__all__) <= set(dir(gemel))
    assert gemel.__version__


def test_cli_choices_match_the_registries():
    from gemel.data import SPLITS
    from gemel.edge.eviction import EVICTION_POLICIES
    from gemel.merge.planner import STRATEGIES

    assert tuple(STRATEGIES) == choices.MERGE_STRATEGIES
    assert sorted(EVICTION_POLICIES) == sorted(choices.EVICTION_POLICIES)
    assert choices.BEST_EVICTION_POLICY in EVICTION_POLICIES
    assert SPLITS == ("train", "val", "test")


def test_usage_errors_are_one_line_naming_the_command(capsys):
    from gemel.cli import main

    cases = (
        (["merge", "w.yaml"], "gemel merge: error: the following arguments are required: --out"),
        (["run", "w.yaml", "--bundle", "b", "--sharing", "both"], "gemel run: error: argument"),
        (["nope"], "gemel: error: argument COMMAND: invalid choice: 'nope'"),
    )
    for argv, start in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(start), err
        assert err.count("\n") == 1 and "--help)" in err, err


def test_version(capsys):
    from gemel.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gemel {gemel.__version__}"
