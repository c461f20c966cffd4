"""Background replays stop at interpreter exit instead of writing while it finalises (a real child process)."""
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import logging, sys, time
    from experiments import background

    logging.basicConfig(stream=sys.stderr, level=logging.INFO)

    def replay():
        try:
            while True:  # a long replay that logs as it goes, as evaluations do on failure
                logging.getLogger("replay").info("step " + "x" * 2000)
                background.check()
                time.sleep(0.001)
        except background.Stopped as exc:
            sys.stdout.write(f"stopped: {exc}\\n")

    for n in range(4):
        background.start(replay, name=f"replay-{n}")
    time.sleep(0.2)
""")


def test_running_replays_stop_cleanly_when_the_process_exits():
    for _ in range(5):  # without the exit hook this aborted the child now and then
        done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count("stopped: interrupted: the process computing it stopped") == 4
