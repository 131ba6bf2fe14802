"""jupyter_kernel_test's protocol conformance suite, run against the installed tslaunch kernel.

Run from test/e2e/conformance.e2e.test.ts (which installs the kernelspec into a temp prefix and
puts it on JUPYTER_PATH), or by hand:
    JUPYTER_PATH=<prefix>/share/jupyter /usr/bin/python3 -m unittest -v test_tslaunch_kernel.py
"""
import unittest

import jupyter_kernel_test
from jupyter_client.utils import run_sync

# Starting N Node workers takes longer than jupyter_kernel_test's default 15 s budget on a busy box.
LAUNCH_TIMEOUT = 60


class TslaunchKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "tslaunch"

    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("test")'

    completion_samples = [
        {"text": "Math.ab", "matches": {"abs"}},
        # %%launch flags complete like any other name
        {"text": "%%launch --num_proc", "matches": {"--num_processes"}},
    ]

    # A cell magic is complete after an empty line, as in ipykernel (jupyter console runs it then).
    complete_code_samples = ["1 + 1", "let x = 1;", '%%launch -n 2\nconsole.log("hi")\n', '%%launch -n 2\nconsole.log("hi")\n\n']
    incomplete_code_samples = ["function f() {", "%%launch -n 2\nfunction f() {", "%%launch -n 3", '%%launch -n 2\nconsole.log("hi")']

    # A syntax error before the end cannot be fixed by more lines.
    invalid_code_samples = ["1 +* 2", ")", "%%launch -n 2\nlet = = 3"]

    code_generate_error = 'throw new Error("boom")'

    code_execute_result = [
        {"code": "6*7", "result": "42"},
    ]

    code_display_data = [
        {"code": 'import * as tslab from "tslab"; tslab.display.html("<b>x</b>")', "mime": "text/html"},
        # Deno's display protocol, through the global display(), and display.json without casts
        {"code": 'display({ [Symbol.for("Jupyter.display")]() { return { "text/html": "<i>deno</i>" }; } })', "mime": "text/html"},
        {"code": "display.json({ a: 1 })", "mime": "application/json"},
    ]

    code_inspect_sample = "Math.abs"

    def collect_outputs(self, msg_id, timeout):
        """iopub messages of one request until its idle status (execute_helper's 0.1 s gaps are too tight for a launch)."""
        outputs = []
        while True:
            msg = run_sync(self.kc.iopub_channel.get_msg)(timeout=timeout)
            jupyter_kernel_test.validate_message(msg, msg["msg_type"], msg_id)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return outputs
            outputs.append(msg)

    def test_trailing_expression_offers_its_display_bundle(self):
        self.flush_channels()
        reply, outputs = self.execute_helper(code='({ [Symbol.for("Jupyter.display")]() { return { "text/markdown": "# md" }; } })')
        self.assertEqual(reply["content"]["status"], "ok")
        results = [m for m in outputs if m["msg_type"] == "execute_result"]
        self.assertEqual(len(results), 1)
        self.assertEqual(results[0]["content"]["data"]["text/markdown"], "# md")
        self.assertIn("text/plain", results[0]["content"]["data"])

    def test_comm_open_to_an_unknown_target_is_closed_on_iopub(self):
        self.flush_channels()
        msg = self.kc.session.msg("comm_open", {"comm_id": "tsl-test-comm", "target_name": "no-such-target", "data": {}})
        self.kc.shell_channel.send(msg)
        while True:
            m = run_sync(self.kc.iopub_channel.get_msg)(timeout=10)
            if m["msg_type"] == "comm_close":
                self.assertEqual(m["content"]["comm_id"], "tsl-test-comm")
                self.assertEqual(m["parent_header"]["msg_id"], msg["header"]["msg_id"])
                return

    def test_display_json_in_launch_workers(self):
        self.flush_channels()
        msg_id = self.kc.execute(code='%%launch -n 2\ndisplay.json({ rank: Number(process.env.RANK) })')
        reply = self.get_non_kernel_info_reply(timeout=LAUNCH_TIMEOUT)
        self.assertEqual(reply["content"]["status"], "ok")
        shown = [m["content"]["data"].get("application/json") for m in self.collect_outputs(msg_id, LAUNCH_TIMEOUT) if m["msg_type"] == "display_data"]
        self.assertIn({"rank": 0}, shown)
        self.assertIn({"rank": 1}, shown)

    def answer_input_request(self, value, expect_prompt, expect_password=False):
        """Reads the kernel's input_request on stdin and answers it (jupyter_kernel_test's schema wants a
        number for `password`, the spec a boolean: the fields are checked here)."""
        request = run_sync(self.kc.stdin_channel.get_msg)(timeout=15)
        self.assertEqual(request["msg_type"], "input_request")
        self.assertEqual(request["header"]["msg_type"], "input_request")
        self.assertEqual(request["parent_header"]["msg_type"], "execute_request")
        self.assertEqual(request["content"]["prompt"], expect_prompt)
        self.assertEqual(request["content"]["password"], expect_password)
        self.kc.input(value)

    def run_answering(self, code, answer, expect_prompt, expect_password=False):
        """Runs a cell that asks once, answers it; returns the cell's iopub outputs (the reply must be ok)."""
        self.flush_channels()
        msg_id = self.kc.execute(code=code, allow_stdin=True)
        self.answer_input_request(answer, expect_prompt, expect_password)
        reply = self.get_non_kernel_info_reply(timeout=15)
        self.assertEqual(reply["content"]["status"], "ok")
        return self.collect_outputs(msg_id, 15)

    def result_text(self, outputs):
        return [m for m in outputs if m["msg_type"] == "execute_result"][0]["content"]["data"]["text/plain"]

    def test_input_request_for_prompt(self):
        outputs = self.run_answering('const who = prompt("Your name?");\nconsole.log("hello " + who)', "Ada", "Your name?")
        stdout = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
        self.assertEqual(stdout, "hello Ada\n")

    def test_prompt_gives_its_default_for_an_empty_answer(self):
        outputs = self.run_answering('prompt("Colour?", "blue")', "", "Colour?")
        self.assertEqual(self.result_text(outputs), "blue")

    def test_async_input_with_password(self):
        code = 'const secret: string = await input("Password:", { password: true });\nsecret.length'
        outputs = self.run_answering(code, "hunter2", "Password:", expect_password=True)
        self.assertEqual(self.result_text(outputs), "7")

    def test_prompt_without_stdin_is_a_clear_error(self):
        self.flush_channels()
        for code in ['prompt("x")', 'await input("x")']:
            self.kc.execute(code=code, allow_stdin=False)
            reply = self.get_non_kernel_info_reply(timeout=15)
            self.assertEqual(reply["content"]["status"], "error")
            self.assertEqual(reply["content"]["ename"], "StdinNotAllowedError")
            self.assertIn("allow_stdin is false", reply["content"]["evalue"])

    def test_interrupt_ends_a_waiting_prompt(self):
        for code in ['prompt("Waiting?")', 'await input("Waiting?")']:
            self.flush_channels()
            self.kc.execute(code=code, allow_stdin=True)
            request = run_sync(self.kc.stdin_channel.get_msg)(timeout=15)
            self.assertEqual(request["msg_type"], "input_request")
            self.km.interrupt_kernel()
            reply = self.get_non_kernel_info_reply(timeout=15)
            self.assertEqual(reply["content"]["status"], "error")
            self.assertEqual(reply["content"]["ename"], "KeyboardInterrupt")
        # ... and the kernel lives on, and asks again
        self.flush_channels()
        self.kc.execute(code='prompt("Again?")', allow_stdin=True)
        self.answer_input_request("yes", "Again?")
        self.assertEqual(self.get_non_kernel_info_reply(timeout=15)["content"]["status"], "ok")

    def test_heartbeat_answers_while_a_cell_is_busy(self):
        self.flush_channels()
        self.kc.execute(code="const until = Date.now() + 4000; while (Date.now() < until) {}")
        # jupyter_client's heartbeat thread pings once a second and marks the kernel dead after a missed beat.
        import time
        time.sleep(3.5)
        self.assertTrue(self.kc.hb_channel.is_beating())
        self.assertEqual(self.get_non_kernel_info_reply(timeout=15)["content"]["status"], "ok")

    def test_launch_replays_the_answers_and_its_body_cannot_ask(self):
        self.flush_channels()
        self.kc.execute(code='const launchedFor = prompt("For whom?");', allow_stdin=True)
        self.answer_input_request("Grace", "For whom?")
        self.assertEqual(self.get_non_kernel_info_reply(timeout=15)["content"]["status"], "ok")
        msg_id = self.kc.execute(code="%%launch -n 2\nconsole.log(`for ${launchedFor}`)")
        reply = self.get_non_kernel_info_reply(timeout=LAUNCH_TIMEOUT)
        self.assertEqual(reply["content"]["status"], "ok")
        stdout = "".join(m["content"]["text"] for m in self.collect_outputs(msg_id, LAUNCH_TIMEOUT) if m["msg_type"] == "stream")
        self.assertIn("[rank0]: for Grace\n", stdout)
        self.assertIn("[rank1]: for Grace\n", stdout)
        self.kc.execute(code='%%launch -n 2\nprompt("from a rank?")', allow_stdin=True)
        reply = self.get_non_kernel_info_reply(timeout=LAUNCH_TIMEOUT)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertIn("ranks have no stdin", reply["content"]["evalue"])

    def test_launch_prefixes_every_rank(self):
        self.flush_channels()
        code = '%%launch -n 2\nconsole.log("hello from rank", process.env.RANK)'
        msg_id = self.kc.execute(code=code)
        reply = self.get_non_kernel_info_reply(timeout=LAUNCH_TIMEOUT)
        jupyter_kernel_test.validate_message(reply, "execute_reply", msg_id)
        self.assertEqual(reply["content"]["status"], "ok")
        outputs = self.collect_outputs(msg_id, LAUNCH_TIMEOUT)
        stdout = "".join(
            m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )
        self.assertIn("[rank0]: hello from rank 0\n", stdout)
        self.assertIn("[rank1]: hello from rank 1\n", stdout)
        for line in stdout.splitlines():
            self.assertRegex(line, r"^\[rank[01]\]: ")
        self.assertEqual([m for m in outputs if m["msg_type"] == "error"], [])

    def test_launch_failure_is_one_error(self):
        self.flush_channels()
        code = '%%launch -n 2\nif (process.env.RANK === "1") {\n  throw new Error("rank one fails");\n}'
        msg_id = self.kc.execute(code=code)
        reply = self.get_non_kernel_info_reply(timeout=LAUNCH_TIMEOUT)
        jupyter_kernel_test.validate_message(reply, "execute_reply", msg_id)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertEqual(reply["content"]["ename"], "LaunchError")
        errors = [m for m in self.collect_outputs(msg_id, LAUNCH_TIMEOUT) if m["msg_type"] == "error"]
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["content"]["evalue"], "rank 1 failed first (exit code 1): Error: rank one fails")


if __name__ == "__main__":
    unittest.main()
