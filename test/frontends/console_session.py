"""Drives a real `jupyter console` (Debian's 6.4) on the tslaunch kernel through a pseudo-terminal,
as a person types: prompt_toolkit, is_complete for every Enter, Ctrl-C by `kill -INT` of the kernel
(console 6.4's own Ctrl-C does not interrupt: jupyter/jupyter_console#296).

Prints the whole session (ANSI codes removed) and exits 0 when every step saw what it waited for;
exits 1 naming the step that timed out. Environment: JUPYTER_PATH (where the kernelspec is)."""
import os
import pty
import re
import select
import signal
import sys
import time

pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "dumb"
    os.execv(sys.executable, [sys.executable, "-m", "jupyter_console", "--kernel", "tslaunch"])

out = ""


def clean(text):
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text).replace("\r", "")


def read_for(seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                out += clean(os.read(fd, 65536).decode(errors="replace"))
            except OSError:
                return


def until(marker, seconds, step):
    end = time.time() + seconds
    while marker not in out:
        if time.time() > end:
            sys.stdout.write(out)
            sys.stdout.write(f"\nTIMED OUT at step {step!r}: {marker!r} never appeared\n")
            sys.exit(1)
        read_for(0.1)


def type_line(line, pause=0.5):
    os.write(fd, line.encode() + b"\r")
    read_for(pause)


def kernel_pid():
    for child in os.listdir("/proc"):
        if child.isdigit():
            try:
                with open(f"/proc/{child}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if ppid == pid and b"tslaunch.js" in cmd and b"kernel" in cmd:
                return int(child)
    return None


until("In [1]", 60, "start")
# A typed %%launch cell: the console must wait for the body and the empty line.
type_line("%%launch -n 2")
type_line('console.log("typed " + process.env.RANK)')
type_line("")
until("[rank1]: typed 1", 60, "typed %%launch cell")
# Pasted: the whole cell at once (bracketed paste), then Enter on the empty line.
os.write(fd, b'\x1b[200~%%launch -n 2\rconsole.log("pasted " + process.env.RANK)\r\x1b[201~')
read_for(0.5)
type_line("")
until("[rank1]: pasted 1", 60, "pasted %%launch cell")
# Ctrl-C: a cell that waits, interrupted with SIGINT to the kernel.
type_line("await new Promise((r) => setTimeout(r, 60000))", 1.5)
kernel = kernel_pid()
if kernel is None:
    sys.stdout.write(out + "\nno kernel process found under the console\n")
    sys.exit(1)
os.kill(kernel, signal.SIGINT)
until("KeyboardInterrupt", 20, "interrupt")
type_line("6 * 7")
until("42", 20, "after the interrupt")
sys.stdout.write(out)
os.kill(pid, signal.SIGKILL)
for _ in range(50):
    if kernel_pid() is None and not os.path.exists(f"/proc/{kernel}"):
        break
    time.sleep(0.1)
try:
    os.kill(kernel, signal.SIGKILL)
except OSError:
    pass
sys.exit(0)
