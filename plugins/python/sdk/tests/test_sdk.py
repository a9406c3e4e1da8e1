import unittest

from synaptic_plugin import Config, Event, Plugin, Severity, Verdict, count, export, log, testing
from synaptic_plugin._contract import decode, encode, events


class EventTest(unittest.TestCase):
    def test_helpers_read_fields_by_path(self):
        event = Event(
            b'{"event_id":"e-1","timestamp":1767225600000,"component":"mesh","event_type":"agent.lifecycle",'
            b'"severity":"WARN","data":{"agent_id":"a-7","n":3,"deep":{"x":[1]}}}'
        )
        self.assertEqual(event.event_type, "agent.lifecycle")
        self.assertEqual(event.component, "mesh")
        self.assertEqual(event.event_id, "e-1")
        self.assertEqual(event.severity, Severity.WARN)
        self.assertEqual(event.timestamp_ms, 1767225600000)
        self.assertEqual(event.text("data.agent_id"), "a-7")
        self.assertEqual(event.text("data.n"), "3")
        self.assertEqual(event.field("data.deep"), {"x": [1]})
        self.assertIsNone(event.field("data.missing"))
        self.assertIsNone(event.field("data.agent_id.below"))
        self.assertGreater(Severity.ERROR, Severity.WARN)
        self.assertIsNone(Severity.parse("warn"))


class ContractTest(unittest.TestCase):
    def test_verdicts_survive_the_wire_encoding(self):
        doc = {"event_id": "ü-😀"}
        verdicts = [Verdict.KEEP, Verdict.replace(doc), Verdict.DROP, Verdict.replace({"a": 1})]
        codes, replacements, ends = encode(verdicts, 4)
        self.assertEqual(list(codes), [0, 2, 1, 2])
        self.assertEqual(len(ends), 2)
        back = decode(codes, replacements, ends)
        self.assertEqual(testing.replaced_document(back[1]), doc)
        self.assertEqual(back, verdicts)

    def test_contract_errors_are_clear(self):
        with self.assertRaisesRegex(ValueError, "1 verdicts for 2 events"):
            encode([Verdict.KEEP], 2)
        with self.assertRaisesRegex(TypeError, "verdict 0 is not"):
            encode([None], 1)
        with self.assertRaisesRegex(ValueError, "outside the data"):
            events(b"{}", [0, 5])
        with self.assertRaisesRegex(ValueError, "offsets are empty"):
            events(b"", [])

    def test_errors_reach_the_host_as_one_line(self):
        class Broken(Plugin):
            def process(self, event):
                raise KeyError("x")

        world = export(Broken)()
        with self.assertRaisesRegex(RuntimeError, "process was called before init"):
            world.process(testing.batch([{}]))
        world.init("")
        with self.assertRaisesRegex(RuntimeError, "^KeyError: 'x'$"):
            world.process(testing.batch([{}]))
        with self.assertRaisesRegex(RuntimeError, "plugin config must be a map"):
            world.init("[1]")

    def test_host_imports_are_recorded_in_tests(self):
        testing.reset()
        log("info", "hello")
        count("seen", 2)
        count("seen")
        self.assertEqual(testing.logs(), [("info", "hello")])
        self.assertEqual(testing.counters(), {"seen": 3})
        with self.assertRaisesRegex(ValueError, "whole number"):
            count("seen", -1)
        with self.assertRaisesRegex(ValueError, "log level"):
            log("loud", "x")

    def test_config_readers_name_the_key(self):
        config = Config.parse('{"a": "x", "b": ["y"], "c": 1}')
        self.assertEqual(config.string("a"), "x")
        self.assertEqual(config.strings("b"), ["y"])
        self.assertIsNone(config.string("missing"))
        with self.assertRaisesRegex(ValueError, r"config\.c: expected a string"):
            config.string("c")


if __name__ == "__main__":
    unittest.main()
