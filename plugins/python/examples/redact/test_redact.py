import unittest

from synaptic_plugin import Verdict, testing

from redact import Redact


class RedactTest(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def test_masks_the_named_fields_and_keeps_events_without_them(self):
        verdicts = testing.run(
            Redact,
            {"fields": ["data.agent_id", "data.reasoning", "tags.missing.deep"]},
            [
                {"event_id": "a", "data": {"agent_id": "agent-1", "reasoning": "mail bob@example.com", "other": 1}},
                {"event_id": "b", "data": {"task_id": "t-1"}},
                {"event_id": "c", "data": {"agent_id": None}},
            ],
        )
        self.assertEqual(
            testing.replaced_document(verdicts[0]),
            {"event_id": "a", "data": {"agent_id": "[REDACTED]", "reasoning": "[REDACTED]", "other": 1}},
        )
        self.assertEqual(verdicts[1:], [Verdict.KEEP, Verdict.KEEP])
        self.assertEqual(testing.counters(), {"redacted": 2})

    def test_a_custom_mask_and_whole_objects(self):
        [verdict] = testing.run(Redact, {"fields": ["data.resource_usage"], "mask": "***"},
                                [{"data": {"resource_usage": {"cpu_percent": 5}}}])
        self.assertEqual(testing.replaced_document(verdict), {"data": {"resource_usage": "***"}})

    def test_lone_surrogates_stay_valid_utf8(self):
        [verdict] = testing.run(Redact, {"fields": ["data.x"]}, ['{"data":{"x":1,"y":"\\ud800"}}'])
        verdict.data.decode("utf-8")
        self.assertEqual(testing.replaced_document(verdict), {"data": {"x": "[REDACTED]", "y": "\ud800"}})

    def test_config_errors_name_the_key(self):
        with self.assertRaisesRegex(RuntimeError, r"config\.fields"):
            testing.start(Redact, {})
        with self.assertRaisesRegex(RuntimeError, "empty part"):
            testing.start(Redact, {"fields": ["data..x"]})
        with self.assertRaisesRegex(RuntimeError, r"config\.mask"):
            testing.start(Redact, {"fields": ["data.x"], "mask": 1})


if __name__ == "__main__":
    unittest.main()
