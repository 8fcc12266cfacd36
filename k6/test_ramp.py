"""Unit tests of the ramp's judgement and stop rule (k6/ramp.py), with
hand-made k6 summaries and queue samples: no k6, no stack.

    python3 k6/test_ramp.py      (tests/run.sh runs it)
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ramp  # noqa: E402

S = ramp.Settings(start=100, step=100, max_rate=500, step_s=10, budget_s=1000, batch=10)


def summary(rate: float, p95: float = 150, failed: int = 0, dropped: int = 0, s: ramp.Settings = S) -> dict:
    """A k6 summary of a step that offered `rate` msg/s for s.step_s."""
    sent = int(rate * s.step_s)
    vals = lambda **kv: {"values": kv}  # noqa: E731
    return {
        "metrics": {
            "messages_sent": vals(count=sent),
            "messages_accepted": vals(count=sent - failed),
            "messages_failed": vals(count=failed),
            "dropped_iterations": vals(count=dropped),
            "http_req_duration{op:post}": vals(count=sent // s.batch, med=100, **{"p(95)": p95, "p(99)": p95 + 20}),
        }
    }


def flat(depth: int = 20) -> list[tuple[float, int]]:
    """A backlog that swings by a batch or two but does not grow."""
    return [(float(t), depth + (10 if t % 2 else -10)) for t in range(11)]


def growing(per_s: float) -> list[tuple[float, int]]:
    return [(float(t), int(per_s * t)) for t in range(11)]


class Judge(unittest.TestCase):
    def test_a_step_within_every_bound_is_held(self):
        step = ramp.judge(S, 300, summary(300), flat())
        self.assertTrue(step["held"], step["why"])
        self.assertEqual(step["acceptedPerS"], 300)

    def test_a_growing_backlog_is_not_held_even_when_the_api_is_fast(self):
        # 300 msg/s offered, the queue gains 60 a second: 600 over the step,
        # above max(100, 5% of 3,000 = 150).
        step = ramp.judge(S, 300, summary(300), growing(60))
        self.assertFalse(step["held"])
        self.assertIn("backlog grew by 600", step["why"][0])

    def test_backlog_noise_within_the_slack_is_held(self):
        # The last sample catches four batches in flight: the trend over the
        # step says "flat", one sample against another would say "grew by 150".
        samples = [(float(t), 160 if t == 10 else 10) for t in range(11)]
        self.assertTrue(ramp.judge(S, 100, summary(100), samples)["held"])

    def test_a_slow_producer_is_not_held(self):
        step = ramp.judge(S, 300, summary(300, p95=1200), flat())
        self.assertFalse(step["held"])
        self.assertIn("p95 1200 ms", step["why"][0])

    def test_messages_not_accepted_above_the_bound_are_not_held(self):
        self.assertTrue(ramp.judge(S, 300, summary(300, failed=30), flat())["held"])  # 1.0%: at the bound
        step = ramp.judge(S, 300, summary(300, failed=31), flat())
        self.assertFalse(step["held"])
        self.assertIn("not accepted", step["why"][0])

    def test_dropped_iterations_mean_the_rate_was_not_offered(self):
        step = ramp.judge(S, 300, summary(300, dropped=10), flat())  # 10 of 300 iterations
        self.assertFalse(step["held"])
        self.assertIn("dropped", step["why"][0])

    def test_a_step_without_answers_is_not_held(self):
        self.assertFalse(ramp.judge(S, 300, {}, flat())["held"])


class Ramp(unittest.TestCase):
    @staticmethod
    def runner(capacity: float, calls: list):
        """A pipeline that keeps up to `capacity` msg/s; past it the backlog grows."""

        def run_step(n, rate, seq_offset):
            calls.append((n, rate, seq_offset))
            backlog = flat() if rate <= capacity else growing(rate - capacity)
            return ramp.judge(S, rate, summary(rate), backlog) | {"summary": summary(rate), "startedAt": n,
                                                                   "endedAt": n + 1}

        return run_step

    def test_stops_at_the_first_step_not_held_and_reports_the_one_before(self):
        calls = []
        result = ramp.ramp(S, self.runner(capacity=320, calls=calls))
        self.assertEqual([rate for _, rate, _ in calls], [100, 200, 300, 400])
        self.assertEqual(result["highestHeld"], 300)
        self.assertIn("step 4 (400 msg/s) not held", result["stop"])
        # Every step's messages get their own sequence numbers (idempotency keys).
        offsets = [o for _, _, o in calls]
        self.assertEqual(len(set(offsets)), len(offsets))
        self.assertTrue(all(b - a >= 10_000_000 for a, b in zip(offsets, offsets[1:])))

    def test_stops_at_ramp_max_when_every_step_is_held(self):
        calls = []
        result = ramp.ramp(S, self.runner(capacity=10_000, calls=calls))
        self.assertEqual([rate for _, rate, _ in calls], [100, 200, 300, 400, 500])
        self.assertEqual(result["highestHeld"], 500)
        self.assertIn("RAMP_MAX", result["stop"])

    def test_no_step_held_reports_none(self):
        result = ramp.ramp(S, self.runner(capacity=50, calls=[]))
        self.assertIsNone(result["highestHeld"])
        self.assertEqual(len(result["steps"]), 1)

    def test_the_time_budget_bounds_the_ramp(self):
        now = [0.0]

        def clock():
            return now[0]

        def run_step(n, rate, seq_offset):
            now[0] += 12  # each step takes its 10 s and 2 s of k6 start and summary
            return ramp.judge(S, rate, summary(rate), flat()) | {"summary": {}, "startedAt": 0, "endedAt": 0}

        s = ramp.Settings(start=100, step=100, max_rate=10_000, step_s=10, budget_s=40, batch=10)
        result = ramp.ramp(s, run_step, clock=clock)
        # Steps start at 0, 12 and 24 s; one starting at 36 s would end after 40 s.
        self.assertEqual(len(result["steps"]), 3)
        self.assertIn("RAMP_BUDGET", result["stop"])

    def test_merged_summary_sums_the_steps_and_takes_the_held_steps_latency(self):
        result = ramp.ramp(S, self.runner(capacity=320, calls=[]))
        merged = ramp.merged_summary(result, "run-1")
        self.assertEqual(merged["metrics"]["messages_sent"]["values"]["count"], 1000 + 2000 + 3000 + 4000)
        self.assertEqual(merged["metrics"]["http_req_duration{op:post}"]["values"]["p(95)"], 150)
        self.assertEqual(merged["ramp"]["highestHeld"], 300)
        self.assertNotIn("summary", merged["ramp"]["steps"][0])


class Schedule(unittest.TestCase):
    def test_rates_run_from_start_to_max_in_steps(self):
        self.assertEqual(ramp.Settings(start=10, step=10, max_rate=30).rates(), [10, 20, 30])
        self.assertEqual(ramp.Settings(start=100, step=150, max_rate=500).rates(), [100, 250, 400])


if __name__ == "__main__":
    unittest.main()
