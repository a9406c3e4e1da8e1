import unittest

from synaptic_plugin import Verdict, testing

from severity_filter import SeverityFilter


class SeverityFilterTest(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def test_drops_below_the_floor_and_counts(self):
        verdicts = testing.run(
            SeverityFilter,
            {"min": "WARN"},
            [{"severity": "DEBUG"}, {"severity": "WARN"}, {"severity": "ERROR"}, {"severity": "LOUD"}],
        )
        self.assertEqual(verdicts, [Verdict.DROP, Verdict.KEEP, Verdict.KEEP, Verdict.KEEP])
        self.assertEqual(testing.counters(), {"below_floor": 1})

    def test_the_default_floor_is_info(self):
        verdicts = testing.run(SeverityFilter, {}, [{"severity": "DEBUG"}, {"severity": "INFO"}])
        self.assertEqual(verdicts, [Verdict.DROP, Verdict.KEEP])

    def test_a_bad_floor_is_a_clear_init_error(self):
        with self.assertRaisesRegex(RuntimeError, r"config\.min.*LOUD"):
            testing.start(SeverityFilter, {"min": "LOUD"})
        with self.assertRaisesRegex(RuntimeError, r"config\.min: expected a string"):
            testing.start(SeverityFilter, {"min": 3})


if __name__ == "__main__":
    unittest.main()
