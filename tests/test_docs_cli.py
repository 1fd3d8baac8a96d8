"""docs/cli.md matches the CLI: every verb has a section and a row in the verbs table, and every
option of the reporting verbs (evaluate, leaderboard, report) is described."""
import argparse
import re
from pathlib import Path

from harness.cli import build_parser

DOC = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_verb_is_documented():
    for verb in subparsers():
        assert f"\n### {verb}\n" in DOC, f"docs/cli.md has no '### {verb}' section"
        assert re.search(rf"^\| `{re.escape(verb)}` \|", DOC, re.M), \
            f"docs/cli.md's verbs table has no row for {verb}"


def test_reporting_options_are_documented():
    common = {"-h", "--help", "--quiet", "-q", "--verbose", "-v", "--log-level", "--no-wait",
              "--verify-content", "--allow-data-change", "--strict", "--log-file"}
    for verb in ("evaluate", "leaderboard", "report"):
        for action in subparsers()[verb]._actions:
            for opt in action.option_strings:
                if opt in common or not opt.startswith("--"):
                    continue
                assert re.search(re.escape(opt) + r"(?![\w-])", DOC), \
                    f"docs/cli.md does not mention {verb} {opt}"


def test_quick_start_facts_are_current():
    assert "103 s on a quiet 2-core VM for the four methods" not in DOC
    assert "four built-in methods (CC-FPSE, SPADE, pix2pixHD,\nGroupDNet)" in DOC
