import unittest

from synaptic_plugin import Verdict, testing

from app import App


class AppTest(unittest.TestCase):
    def test_drops_the_configured_event_types(self):
        testing.reset()
        verdicts = testing.run(App, {"drop_event_types": ["mesh.topology.change"]},
                               [{"event_type": "mesh.topology.change"}, {"event_type": "task.completed"}])
        self.assertEqual(verdicts, [Verdict.DROP, Verdict.KEEP])
        self.assertEqual(testing.counters(), {"dropped_by_type": 1})


if __name__ == "__main__":
    unittest.main()
