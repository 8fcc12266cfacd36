"""Tests of harness/instructions.py: reading callgrind's output, and (where
valgrind and the Rust consumer's release build are present) one real count.

Run: cd bench && ../.venv/bin/python -m unittest tests/test_instructions.py
"""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import instructions  # noqa: E402
from harness.functions import rust_spec  # noqa: E402

# The head and tail of a real callgrind 3.19 dump (`callgrind_control -d`),
# cost lines cut down to a few.
DUMP = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 15398
cmd:  /root/.pyenv/versions/3.11.7/bin/python3 -c import time
part: 2


desc: I1 cache: 
desc: D1 cache: 
desc: LL cache: 
desc: Timerange: Basic block 3287146 - 3450221
desc: Trigger: Client Request: dump

positions: line
events: Ir
summary: 33054068


ob=(1) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(1) ???
fn=(1) 0x0000000000129350
0 28
cfn=(2) std::rt::lang_start::{{closure}}
calls=1 0
0 1200
fn=(3) <hyper::proto::h1::role::Client as hyper::proto::h1::Http1Transaction>::encode
+3 17

totals: 33054068
"""


class ParseTest(unittest.TestCase):
    def test_totals_line_gives_the_instruction_count(self):
        header = instructions.parse_header(DUMP)
        self.assertEqual(header["events"], ["Ir"])
        self.assertEqual(header["totals"], {"Ir": 33054068})
        self.assertEqual(header["part"], 2)
        self.assertEqual(header["pid"], 15398)
        self.assertTrue(header["cmd"].startswith("/root/.pyenv"))

    def test_totals_wins_over_summary_and_summary_is_the_fallback(self):
        both = DUMP.replace("totals: 33054068", "totals: 40000000")
        self.assertEqual(instructions.parse_header(both)["totals"]["Ir"], 40000000)
        only_summary = DUMP.replace("totals: 33054068\n", "")
        self.assertEqual(instructions.parse_header(only_summary)["totals"]["Ir"], 33054068)

    def test_several_events_are_read_by_name(self):
        text = DUMP.replace("events: Ir", "events: Ir Dr Dw").replace("totals: 33054068", "totals: 9 7")
        header = instructions.parse_header(text)
        # A trailing zero column may be left out of the line.
        self.assertEqual(header["totals"], {"Ir": 9, "Dr": 7, "Dw": 0})

    def test_a_file_that_is_not_a_dump_or_not_finished_is_an_error(self):
        with self.assertRaises(instructions.CallgrindError):
            instructions.parse_header("hello\nworld\n")
        # Being written: events seen, no totals yet.
        with self.assertRaises(instructions.CallgrindError):
            instructions.parse_header(DUMP.split("summary:")[0])
        with self.assertRaises(instructions.CallgrindError):
            instructions.parse_header(DUMP.replace("totals: 33054068", "totals: 1 2"))

    def test_instructions_in_needs_an_ir_event(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "callgrind.out.1.1"
            path.write_text(DUMP)
            self.assertEqual(instructions.instructions_in(path), 33054068)
            path.write_text(DUMP.replace("events: Ir", "events: Dr"))
            with self.assertRaises(instructions.CallgrindError):
                instructions.instructions_in(path)

    def test_version_text_names_the_tool(self):
        self.assertEqual(instructions.parse_version("valgrind-3.19.0\n"), "callgrind 3.19")
        self.assertEqual(instructions.parse_version("valgrind-3.22.1.GIT"), "callgrind 3.22")
        self.assertIsNone(instructions.parse_version("command not found"))

    def test_table_shows_figures_and_reasons(self):
        table = instructions.format_table([
            {"function": "rust", "batch": 100, "instructions_per_message": 660690.4, "init_instructions": 21903070,
             "messages": 300, "tool": "callgrind 3.19"},
            {"function": "node-powertools", "batch": 100, "unavailable": "valgrind: V8 died\nmore"},
        ])
        self.assertIn("| rust | 100 | 660,690 | 21,903,070 | 300 | callgrind 3.19 |", table)
        self.assertIn("| node-powertools | 100 | n/a | n/a | 0 | unavailable: valgrind: V8 died |", table)


class MeasureTest(unittest.TestCase):
    def test_a_missing_function_is_unavailable_with_its_reason(self):
        spec = rust_spec("/nonexistent/consumer")
        row = instructions.measure(spec, batch=10, invocations=1)
        self.assertIn("unavailable", row)
        if instructions.available() is None:
            self.assertIn("not found", row["unavailable"])

    def test_rust_consumer_count_scales_with_the_messages(self):
        """A real count: 2 invocations of 10 messages cost about twice 1 of 10
        (the dump is of the measured invocations only, not of init/warm-up)."""
        reason = instructions.available()
        if reason:
            self.skipTest(reason)
        spec = rust_spec(None)
        if spec.missing:
            self.skipTest(spec.missing)
        one = instructions.measure(spec, batch=10, invocations=1)
        two = instructions.measure(spec, batch=10, invocations=2)
        self.assertNotIn("unavailable", one, one.get("unavailable"))
        self.assertNotIn("unavailable", two, two.get("unavailable"))
        self.assertEqual((one["messages"], two["messages"]), (10, 20))
        ratio = two["instructions_total"] / one["instructions_total"]
        self.assertGreater(ratio, 1.7)
        self.assertLess(ratio, 2.3)
        # Init is counted apart and is far more than one message's work.
        self.assertGreater(one["init_instructions"], one["instructions_per_message"] * 5)


if __name__ == "__main__":
    unittest.main()
